// A small fault-injecting HTTP proxy (node:http) that sits between a build and a real upstream
// docker-registry (and, for token auth, its token issuer). Each test installs one `fault`
// function that sees every request and either lets it through untouched or answers it itself,
// usually from the real upstream answer (`forward()`), bent in one precise way.
//
// Bodies are buffered: the test images are tiny, and a buffered answer lets a fault cut, corrupt
// or lengthen it at an exact byte.
import { createHash } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { entriesUnder, snapshotTree } from './fs-walk.ts';

export { snapshotTree };

export interface UpstreamAnswer {
  status: number;
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
}

export interface FaultContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The request's path and query, as a URL on the proxy. */
  url: URL;
  /** The request's body (token POSTs). */
  body: Buffer;
  /** 1-based count of requests seen so far by this proxy whose path matches this one's kind (see `kindOf`). */
  seen: number;
  /** The real upstream's answer to this request (registry, or the issuer for /token). */
  forward(overrides?: { headers?: http.OutgoingHttpHeaders }): Promise<UpstreamAnswer>;
  /** Sends an answer (status, headers, body); Content-Length is the body's unless given. */
  send(answer: UpstreamAnswer): void;
  /** Sends the headers and `bytes` of the body, then kills the connection with a TCP reset. */
  resetAfter(answer: UpstreamAnswer, bytes: number): void;
  /** Sends the headers and `bytes` of the body, then closes the connection cleanly (FIN). */
  closeAfter(answer: UpstreamAnswer, bytes: number): void;
}

/** Returns true when it answered the request; false/undefined lets it through untouched. */
export type Fault = (ctx: FaultContext) => boolean | void | Promise<boolean | void>;

export interface FaultProxy {
  /** 'http://127.0.0.1:PORT' */
  url: string;
  /** '127.0.0.1:PORT' — what goes in an image reference. */
  host: string;
  port: number;
  /** The fault in force (none: a transparent proxy). */
  fault?: Fault;
  /** Every request: 'METHOD /path [range] → status'. */
  log: string[];
  /** Every Authorization header value received (for the credential-leak checks). */
  authorizations: string[];
  /**
   * Faults injected since the last reset(), counted when the fault is decided (not when its
   * response finishes, as `log` is), by faults built with failFirst().
   */
  faults: number;
  /**
   * A fault answering the first `n` requests (those `skip` does not exempt) with `with(ctx)`,
   * the rest passed through. The decision and the count are one synchronous step.
   */
  failFirst(n: number, answer: { with: (c: FaultContext) => UpstreamAnswer; skip?: (c: FaultContext) => boolean }): Fault;
  reset(): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** The real registry, 'http://127.0.0.1:PORT'. */
  target: string;
  /**
   * The token issuer's realm ('http://127.0.0.1:PORT/token'): requests to /token go there, and
   * the realm in every 401's WWW-Authenticate is rewritten to point at this proxy, so token
   * requests pass through the faults too.
   */
  realm?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);

/** Listens on an ephemeral port (port 0: the kernel picks a free one, no race) and returns it. */
async function listenEphemeral(server: http.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('fault proxy: no TCP address after listen');
  return addr.port;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  // Known once the server listens (below); nothing reads it before a request arrives.
  let port = 0;
  let self = '';
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();

  const forward = (req: http.IncomingMessage, body: Buffer, extra: http.OutgoingHttpHeaders = {}): Promise<UpstreamAnswer> => {
    const toIssuer = opts.realm && new URL(req.url ?? '/', self).pathname === new URL(opts.realm).pathname;
    const base = new URL(toIssuer ? opts.realm! : opts.target);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    headers.host = base.host;
    // An override of undefined removes the header (e.g. forward without the client's Range).
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined) delete headers[k];
      else headers[k] = v;
    }
    return new Promise((resolve, reject) => {
      const up = http.request(
        { host: base.hostname, port: base.port, method: req.method, path: req.url, headers, agent: false },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('error', reject);
          r.on('end', () => {
            const out: http.OutgoingHttpHeaders = {};
            for (const [k, v] of Object.entries(r.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
            // The issuer lives elsewhere: make clients ask it through us.
            if (opts.realm && typeof out['www-authenticate'] === 'string') {
              out['www-authenticate'] = out['www-authenticate'].replace(opts.realm, `${self}${new URL(opts.realm).pathname}`);
            }
            resolve({ status: r.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
          });
        },
      );
      up.on('error', reject);
      up.end(body.length ? body : undefined);
    });
  };

  const writeHead = (res: http.ServerResponse, a: UpstreamAnswer, method: string | undefined) => {
    const headers = { ...a.headers };
    // A HEAD answer keeps the upstream's Content-Length (the size of the GET body).
    if (method !== 'HEAD' && headers['content-length'] === undefined) headers['content-length'] = String(a.body.length);
    res.writeHead(a.status, headers);
  };

  const proxy: FaultProxy = {
    url: '',
    host: '',
    port: 0,
    log: [],
    authorizations: [],
    faults: 0,
    failFirst(n, answer) {
      // Decided synchronously when the request arrives: concurrent requests cannot overshoot n.
      return (c) => {
        if (answer.skip?.(c)) return;
        if (proxy.faults >= n) return;
        proxy.faults++;
        c.send(answer.with(c));
        return true;
      };
    },
    reset() {
      proxy.fault = undefined;
      proxy.log.length = 0;
      proxy.faults = 0;
      counts.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', self);
    if (req.headers.authorization) proxy.authorizations.push(req.headers.authorization);
    const kind = kindOf(req.method ?? 'GET', url.pathname);
    const seen = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, seen);
    const entry = `${req.method} ${url.pathname}${req.headers.range ? ` [${req.headers.range}]` : ''}`;
    res.on('finish', () => proxy.log.push(`${entry} → ${res.statusCode}`));
    res.on('close', () => {
      if (!res.writableFinished) proxy.log.push(`${entry} → ${res.statusCode} (cut)`);
    });

    const cut = (a: UpstreamAnswer, bytes: number, how: 'reset' | 'close') => {
      writeHead(res, a, req.method);
      res.write(a.body.subarray(0, bytes), () => {
        // Let the bytes leave before the connection dies.
        setTimeout(() => (how === 'reset' ? req.socket.resetAndDestroy() : req.socket.end()), 20);
      });
    };
    const ctx: FaultContext = {
      req,
      res,
      url,
      body,
      seen,
      forward: (o) => forward(req, body, o?.headers),
      send: (a) => {
        writeHead(res, a, req.method);
        res.end(req.method === 'HEAD' ? undefined : a.body);
      },
      resetAfter: (a, n) => cut(a, n, 'reset'),
      closeAfter: (a, n) => cut(a, n, 'close'),
    };
    try {
      if (proxy.fault && (await proxy.fault(ctx))) return;
      ctx.send(await forward(req, body));
    } catch (err) {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault proxy: ${(err as Error).message}`);
      } else res.destroy();
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  port = await listenEphemeral(server);
  self = `http://127.0.0.1:${port}`;
  Object.assign(proxy, { url: self, host: `127.0.0.1:${port}`, port });
  return proxy;
}

/** 'HEAD manifest', 'GET manifest', 'GET blob', 'GET token', 'GET ping', … for counting requests by kind. */
export function kindOf(method: string, pathname: string): string {
  if (/\/manifests\//.test(pathname)) return `${method} manifest`;
  if (/\/blobs\//.test(pathname)) return `${method} blob`;
  if (pathname === '/v2/' || pathname === '/v2') return `${method} ping`;
  if (pathname.endsWith('/token')) return `${method} token`;
  return `${method} other`;
}

/** The same bytes with one hex digit after the first `sha256:` changed: still JSON, another hash. */
export function corruptJsonDigit(body: Buffer): Buffer {
  const text = body.toString('utf8');
  const at = text.indexOf('sha256:') + 'sha256:'.length;
  if (at < 'sha256:'.length) throw new Error('corruptJsonDigit: no digest in the body');
  const c = text[at];
  return Buffer.from(text.slice(0, at) + (c === 'a' ? 'b' : 'a') + text.slice(at + 1));
}

/** A tiny second origin (a "CDN") serving bytes by path; like S3/R2 it refuses any request carrying Authorization. */
export interface Cdn {
  url: string;
  /** path → bytes */
  objects: Map<string, Buffer>;
  log: string[];
  close(): Promise<void>;
}

export async function startCdn(): Promise<Cdn> {
  const objects = new Map<string, Buffer>();
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    log.push(`${req.method} ${p}${req.headers.authorization ? ' (with Authorization)' : ''}`);
    if (req.headers.authorization) {
      res.writeHead(400, { 'content-type': 'application/xml' });
      res.end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
      return;
    }
    const obj = objects.get(p);
    if (!obj) {
      res.writeHead(404);
      res.end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    res.writeHead(range ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(obj.length - start),
      ...(range ? { 'content-range': `bytes ${start}-${obj.length - 1}/${obj.length}` } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : obj.subarray(start));
  });
  const port = await listenEphemeral(server);
  return {
    url: `http://127.0.0.1:${port}`,
    objects,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The integrity assertions every fault test ends with.


/**
 * Problems with the content of an output folder and a cache: a file named by a digest
 * (`sha256:<hex>` in the output, `<hex>` under the cache's blobs/sha256/) whose bytes hash to
 * something else, a temp or staging leftover, or a symlink. Empty when all is well.
 */
export async function integrityProblems(outDir: string, cacheDir: string): Promise<string[]> {
  const problems: string[] = [];
  const check = async (root: string, rel: string, expectHex: string | undefined) => {
    const full = path.join(root, rel);
    const st = await lstat(full);
    if (st.isSymbolicLink()) problems.push(`${full}: a symlink`);
    if (expectHex === undefined || !st.isFile()) return;
    const actual = createHash('sha256').update(await readFile(full)).digest('hex');
    if (actual !== expectHex) problems.push(`${full}: hashes to ${actual}, not its name`);
  };
  for (const [root, isCache] of [[outDir, false], [cacheDir, true]] as const) {
    let entries;
    try {
      entries = await entriesUnder(root);
    } catch {
      continue;
    }
    for (const { entry: e, rel } of entries) {
      const parts = rel.split(path.sep);
      if (parts.some((p) => p.startsWith('.registrish-staging-'))) problems.push(`${path.join(root, rel)}: staging leftover`);
      if (isCache && parts[0] === 'tmp' && parts.length > 1) problems.push(`${path.join(root, rel)}: temp leftover`);
      const named = /^sha256:([a-f0-9]{64})$/.exec(e.name)?.[1] ?? (isCache && parts.at(-2) === 'sha256' ? e.name : undefined);
      if (e.isFile() && isCache && parts.at(-2) === 'sha256' && !/^[a-f0-9]{64}$/.test(e.name)) problems.push(`${path.join(root, rel)}: not a digest name`);
      await check(root, rel, named);
    }
  }
  return problems;
}

/** Differences between two snapshots (missing, extra or changed files), for a readable failure. */
export function diffSnapshots(before: Map<string, Buffer>, after: Map<string, Buffer>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) {
    const w = after.get(k);
    if (!w) out.push(`missing: ${k}`);
    else if (!w.equals(v)) out.push(`changed: ${k}`);
  }
  for (const k of after.keys()) if (!before.has(k)) out.push(`extra: ${k}`);
  return out;
}
