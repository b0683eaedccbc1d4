import { RegistrishError } from '../util/errors.ts';
import { packageVersion } from '../util/version.ts';
import { UsageError, type CliIO } from './args.ts';

// `registrish` command line: dispatch only. Each command is an entry in COMMANDS that loads its
// module lazily (so `--help` stays fast and one command's dependencies never load for another);
// commands import ./args.ts, never this file.

interface Command {
  summary: string;
  usage: string;
  run: (argv: string[], io: CliIO) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'preview a built site as a registry, with its _headers applied',
    usage: 'Usage: registrish serve [dir] [--port 8080] [--host 127.0.0.1]\n(registrish serve --help for details)',
    // Lazy: the server pulls in the headers parser, which other commands do not need.
    run: async (argv, io) => (await import('../serve/command.ts')).serveCommand(argv, io),
  },
  check: {
    summary: 'check a deployed registry the way pull clients read it',
    usage:
      'Usage: registrish check <url> [--images images.json] [--quick] [--host <host>] [--concurrency n] [--json]\n(registrish check --help for details)',
    // Lazy: the checker (and its HTTP stack) loads only when this command runs.
    run: async (argv, io) => (await import('../check/command.ts')).checkCommand(argv, io),
  },
  deploy: {
    summary: 'upload a built registry to an S3-compatible object store',
    usage:
      'Usage: registrish deploy s3://bucket[/prefix] [dir] [--endpoint-url URL] [--region R] [--path-style] [--acl public-read] [--delete] [--dry-run]\n(registrish deploy --help for details)',
    // Lazy: the S3 client loads only when this command runs.
    run: async (argv, io) => (await import('../deploy/command.ts')).deployCommand(argv, io),
  },
};

function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const list = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `Usage: registrish <command> [options]

Commands:
${list}

Options:
  -h, --help     show this help (registrish <command> --help for a command)
  -v, --version  print the version`;
}

function defaultIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    untilStopped: () =>
      new Promise((resolve) => {
        const stop = (sig: string): void => {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve(sig);
        };
        const onInt = (): void => stop('SIGINT');
        const onTerm = (): void => stop('SIGTERM');
        process.once('SIGINT', onInt);
        process.once('SIGTERM', onTerm);
      }),
  };
}

/** Runs the CLI; resolves with the exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) throw new UsageError('missing command');
    if (first === '-h' || first === '--help' || first === 'help') {
      io.stdout(`${mainUsage()}\n`);
      return 0;
    }
    if (first === '-v' || first === '--version') {
      io.stdout(`${packageVersion()}\n`);
      return 0;
    }
    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (!command) throw new UsageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command "${first}"`);
    try {
      return await command.run(rest, io);
    } catch (e) {
      if (e instanceof UsageError) {
        io.stderr(`registrish ${first}: ${e.message}\n\n${command.usage}\n`);
        return 2;
      }
      throw e;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`registrish: ${e.message}\n\n${mainUsage()}\n`);
      return 2;
    }
    if (e instanceof RegistrishError) {
      io.stderr(`registrish: error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      return 1;
    }
    io.stderr(`registrish: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
