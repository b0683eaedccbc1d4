import fsp from 'node:fs/promises';
import path from 'node:path';
import { isLoopbackHost } from '../model/reference.ts';
import { parseCommandArgs, UsageError, type CliIO } from '../cli/args.ts';
import { startPreviewServer } from './server.ts';

// `registrish serve [dir]`: arguments, the hint line, and running until Ctrl-C.

export const SERVE_USAGE = `Usage: registrish serve [dir] [--port 8080] [--host 127.0.0.1] [--blobs-dir <folder>]

Serves a built site (default: _site) with its _headers applied exactly as Netlify's parser reads
them, so you can try \`docker pull 127.0.0.1:8080/<name>:<tag>\` before deploying. A site built
with the \`blobs\` option sends every blob URL to its object store with a 307, as the hosts do.

Options:
  -p, --port <n>          TCP port (default 8080; 0 picks a free one)
      --host <addr>       address to listen on (default 127.0.0.1)
      --blobs-dir <dir>   offline preview of a site whose blobs are in a store: redirect blobs to
                          this server, which serves them from <dir> (the build's cache,
                          .cache/registrish, or a copy of the store)
  -h, --help              show this help`;

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

export async function serveCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(argv, { port: { type: 'string', short: 'p' }, host: { type: 'string' }, 'blobs-dir': { type: 'string' } });
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

  const blobsDir = values['blobs-dir'];
  if (blobsDir !== undefined && !(await fsp.stat(blobsDir).then((st) => st.isDirectory(), () => false))) {
    throw new UsageError(`--blobs-dir ${blobsDir} is not a folder (give the build's cache, e.g. .cache/registrish)`);
  }
  // Loaded on demand: the server pulls in the headers parser, which other commands do not need.
  const server = await startPreviewServer({
    dir,
    port: Number(portText),
    host,
    log: (line) => io.stderr(`${line}\n`),
    blobsDir,
  });
  try {
    await fsp.access(path.join(dir, '_headers'));
  } catch {
    // Built for nginx or Apache: the registry's headers come from the paths file instead.
    if (!(await fsp.access(path.join(dir, 'v2', '.registrish-paths.json')).then(() => true, () => false))) {
      io.stderr(
        `registrish: warning: ${path.join(dir, '_headers')} does not exist; every file is served as ` +
          'application/octet-stream and pulls will fail. Did the build run?\n',
      );
    }
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
