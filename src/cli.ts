import { isLoopbackHost } from './reference.ts';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { RegistrishError } from './errors.ts';

// `registrish` command line. Each command is an entry in COMMANDS that loads its implementation
// lazily, so `check`/`deploy` can be added as their own modules without touching the others and
// `--help` stays fast.

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Resolves when the user asks a long-running command to stop (SIGINT/SIGTERM by default). */
  untilStopped: () => Promise<string>;
}

interface Command {
  summary: string;
  usage: string;
  run: (argv: string[], io: CliIO) => Promise<number>;
}

/** Thrown for bad invocations: printed with the usage, exit code 2. */
export class UsageError extends Error {}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * A command's arguments: positionals allowed, `-h/--help` added, and anything parseArgs refuses
 * (unknown flag, missing value) turned into a usage error, printed with the command's usage.
 */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...options, ...HELP_OPTION } });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}


const SERVE_USAGE = `Usage: registrish serve [dir] [--port 8080] [--host 127.0.0.1]

Serves a built site (default: _site) with its _headers applied exactly as Netlify's parser reads
them, so you can try \`docker pull 127.0.0.1:8080/<name>:<tag>\` before deploying.

Options:
  -p, --port <n>     TCP port (default 8080; 0 picks a free one)
      --host <addr>  address to listen on (default 127.0.0.1)
  -h, --help         show this help`;

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'preview a built site as a registry, with its _headers applied', usage: SERVE_USAGE, run: serveCommand },
  check: {
    summary: 'check a deployed registry the way pull clients read it',
    usage:
      'Usage: registrish check <url> [--images images.json] [--quick] [--host netlify|cloudflare|nginx|s3|apache] [--concurrency n] [--json]\n(registrish check --help for details)',
    // Lazy: the checker (and its HTTP stack) loads only when this command runs.
    run: async (argv, io) => (await import('./check.ts')).checkCommand(argv, io),
  },
  deploy: {
    summary: 'upload a built registry to an S3-compatible object store',
    usage:
      'Usage: registrish deploy s3://bucket[/prefix] [dir] [--endpoint-url URL] [--region R] [--path-style] [--acl public-read] [--delete] [--dry-run]\n(registrish deploy --help for details)',
    // Lazy: the S3 client loads only when this command runs.
    run: async (argv, io) => (await import('./deploy.ts')).deployCommand(argv, io),
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

async function version(): Promise<string> {
  const pkg = JSON.parse(await fsp.readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
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
      io.stdout(`${await version()}\n`);
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


/** `name:tag` of something actually published, for the hint line; undefined when unknown. */
async function exampleImage(dir: string): Promise<string | undefined> {
  try {
    const catalog = JSON.parse(await fsp.readFile(path.join(dir, 'v2', '_catalog'), 'utf8')) as { repositories?: string[] };
    const name = catalog.repositories?.[0];
    if (!name) return undefined;
    const list = JSON.parse(await fsp.readFile(path.join(dir, 'v2', ...name.split('/'), 'tags', 'list'), 'utf8')) as {
      tags?: string[];
    };
    const tag = list.tags?.[0];
    return tag ? `${name}:${tag}` : undefined;
  } catch {
    return undefined;
  }
}

async function serveCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(argv, { port: { type: 'string', short: 'p' }, host: { type: 'string' } });
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(`${SERVE_USAGE}\n`);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected one directory, got ${positionals.length}: ${positionals.join(' ')}`);
  const dir = positionals[0] ?? '_site';
  const portText = values.port ?? '8080';
  if (!/^\d+$/u.test(portText) || Number(portText) > 65535) throw new UsageError(`--port must be 0–65535, got "${portText}"`);
  const host = values.host ?? '127.0.0.1';
  if (host === '') throw new UsageError('--host must not be empty');
  if (!isLoopbackHost(host)) {
    io.stderr(
      `registrish: warning: --host ${host} is not a loopback address; anyone who can reach this machine can pull from the preview\n`,
    );
  }

  // Loaded on demand: the server pulls in the headers parser, which other commands do not need.
  const { startPreviewServer } = await import('./serve.ts');
  const server = await startPreviewServer({
    dir,
    port: Number(portText),
    host,
    log: (line) => io.stderr(`${line}\n`),
  });
  try {
    await fsp.access(path.join(dir, '_headers'));
  } catch {
    io.stderr(
      `registrish: warning: ${path.join(dir, '_headers')} does not exist; every file is served as ` +
        'application/octet-stream and pulls will fail. Did the build run?\n',
    );
  }
  const hostPort = server.url.replace(/^http:\/\//u, '');
  const example = (await exampleImage(dir)) ?? '<name>:<tag>';
  io.stdout(`registrish: serving ${dir} at ${server.url} — try: docker pull ${hostPort}/${example}\n`);
  io.stdout(`registrish: (podman/skopeo need --tls-verify=false for plain HTTP) — Ctrl-C to stop\n`);
  const signal = await io.untilStopped();
  io.stderr(`registrish: ${signal}, stopping\n`);
  await server.close();
  return 0;
}
