import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { freePort, spawnDaemon, tailFile, type Daemon } from './procs.ts';

// Cloudflare's own local Pages server, `wrangler pages dev` (workerd, with the same `_headers` and
// 404.html handling as Pages), serving a built folder on 127.0.0.1. wrangler 4.60.0 is pinned in
// package.json: the last release that runs on Node 20. It warns that it cannot reach Cloudflare
// (no account, no network here): harmless, the asset server runs locally.
//
// HTTPS (`--local-protocol https`, a self-signed certificate wrangler makes): Pages only speaks
// HTTPS, and on plain HTTP every docker, skopeo and podman operation first waits ~10 s for a TLS
// handshake workerd never answers before falling back (measured: 4 min 40 s for this file's pulls).

const WRANGLER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '.bin', 'wrangler');

export interface PagesDev {
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** For requests to it: its certificate is self-signed. */
  dispatcher: Agent;
  daemon: Daemon;
  stop(): Promise<void>;
}

/** Starts `wrangler pages dev DIR` on free ports; its state and logs stay in `runDir`. */
export async function startPagesDev(dir: string, runDir: string): Promise<PagesDev> {
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // The inspector defaults to 9229, which parallel runs would fight over.
    const inspector = await freePort();
    const logFile = path.join(runDir, `wrangler-${attempt}.log`);
    try {
      const daemon = await spawnDaemon(
        WRANGLER,
        ['pages', 'dev', dir, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector), '--persist-to', path.join(runDir, 'wrangler-state'), '--compatibility-date', '2025-01-01', '--local-protocol', 'https', '--show-interactive-dev-session=false'],
        {
          cwd: runDir,
          // Its certificate and logs go to runDir, not the user's config folder.
          env: { ...process.env, XDG_CONFIG_HOME: runDir, WRANGLER_SEND_METRICS: 'false', WRANGLER_LOG_PATH: path.join(runDir, 'wrangler-logs'), CI: '1', NO_COLOR: '1' },
          logFile,
          timeoutMs: 60_000,
          ready: async () => (await fetch(`https://127.0.0.1:${port}/v2/`, { dispatcher })).status === 200,
        },
      );
      return { url: `https://127.0.0.1:${port}`, port, daemon, dispatcher, stop: async () => { await daemon.stop(); await dispatcher.close(); } };
    } catch (e) {
      if (attempt >= 3 || !/EADDRINUSE|Address already in use/u.test(tailFile(logFile))) throw e;
    }
  }
}
