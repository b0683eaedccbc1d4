import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RegistrishError } from '../util/errors.ts';
import type { HeaderList } from '../publish/headers.ts';
import { ERROR_CONTENT_TYPE, notFoundBody, notFoundKind } from '../publish/not-found.ts';
import { headersFor } from '../publish/headers.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { DIGEST_PATTERN, digestPath } from '../model/digest.ts';
import { blobRedirect, type BlobRedirect } from '../publish/blob-store.ts';
import { PATHS_FILE, readPathsFile } from '../publish/paths-file.ts';
import { HeaderRuleIndex, loadHeaderRules, matchHeaders } from './header-rules.ts';

// Preview server: serves a built output directory the way Netlify would, with `_headers` read and
// matched exactly as Netlify's parser reads them (./header-rules.ts), so `docker pull
// 127.0.0.1:8080/name:tag` can be tried before deploying (`netlify dev` cannot: its proxy
// overwrites Content-Type).
//
// Rule precedence (assumed, documented nowhere official): every rule whose path matches applies, in
// file order, and for the same header name (compared case-insensitively) the later rule wins. That
// is what `netlify dev` does with the parser's output (headersForPath: Object.assign over matching
// rules) and what the parser does for a path listed twice. Cloudflare Pages would comma-join instead,
// which is why the writer never emits overlapping rules.

/** Netlify ignores custom values for these (docs: "Custom headers" limitations); so do we. */
const HOST_OWNED_HEADERS = new Set(
  [
    'accept-ranges',
    'age',
    'allow',
    'alt-svc',
    'connection',
    'content-encoding',
    'content-length',
    'content-range',
    'date',
    'location',
    'server',
    'trailer',
    'transfer-encoding',
    'upgrade',
  ],
);

/** Types of a site's own files by extension (what a static host sends for them). */
const SITE_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.woff2': 'font/woff2',
  '.pdf': 'application/pdf',
};

/** Files Netlify reads as configuration and never serves. */
const CONFIG_FILES = new Set(['_headers', '_redirects']);

export interface PreviewServerOptions {
  /** Built output directory (the one holding `v2/` and `_headers`). */
  dir: string;
  /** 0 picks a free port; the chosen one is reported back. */
  port?: number;
  host?: string;
  /** One line per request (method, path, status, bytes) and reload errors. Quiet when absent. */
  log?: (line: string) => void;
  /**
   * Blobs kept in an object store (built with the `blobs` option) are redirected to the store the
   * build named. With `blobsDir`, to this server instead, which serves them from that folder (the
   * build's cache, or a copy of the store): an offline preview through the same redirects.
   */
  blobsDir?: string;
}

export interface PreviewServer {
  /** `http://host:port`, with the actual port. */
  url: string;
  port: number;
  host: string;
  close(): Promise<void>;
}

type ByteRange = { start: number; end: number };

/**
 * One `bytes=` range, or 'unsatisfiable', or undefined to serve the whole file. Multiple ranges
 * and malformed values are ignored (RFC 9110 lets a server do that); no client here sends them.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/iu.exec(header);
  if (!m) return undefined;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const n = Number(last);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined; // invalid range-spec: ignore the header
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

export async function startPreviewServer(options: PreviewServerOptions): Promise<PreviewServer> {
  const { port = 8080, host = '127.0.0.1', log } = options;
  let root: string;
  try {
    root = await fsp.realpath(path.resolve(options.dir));
  } catch (e) {
    throw new RegistrishError(`cannot serve ${options.dir}: it does not exist`, {
      cause: e,
      hint: 'Build the site first (npx @11ty/eleventy), or pass the output directory: registrish serve DIR',
    });
  }
  if (!(await fsp.stat(root)).isDirectory()) throw new RegistrishError(`cannot serve ${options.dir}: not a directory`);
  const headersFile = path.join(root, '_headers');

  // `_headers` is re-read when it changes, so a rebuild is picked up without a restart.
  let cache: { key: string; rules: Promise<HeaderRuleIndex> } | undefined;
  const rulesNow = async (): Promise<HeaderRuleIndex> => {
    let key = 'missing';
    try {
      const st = await fsp.stat(headersFile);
      key = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (cache?.key !== key) {
      cache = { key, rules: key === 'missing' ? Promise.resolve(new HeaderRuleIndex([])) : loadHeaderRules(headersFile) };
      cache.rules.catch(() => {}); // reported to each request that awaits it
    }
    return cache.rules;
  };
  await rulesNow(); // parse errors surface at startup, not on the first pull
  const blobs = blobRedirects(root, options.blobsDir === undefined ? undefined : path.resolve(options.blobsDir));

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    let sent = 0;
    res.once('close', () => log?.(`${method} ${rawUrl} ${res.statusCode} ${sent}`));

    const sendText = (status: number, body: string, extra: Record<string, string> = {}): void => {
      const buf = Buffer.from(body);
      res.writeHead(status, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': String(buf.length),
        ...extra,
      });
      if (method === 'HEAD') res.end();
      else {
        sent = buf.length;
        res.end(buf);
      }
    };

    respond().catch((e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      log?.(`registrish serve: ${method} ${rawUrl}: ${message}`);
      if (!res.headersSent) sendText(500, `500 Internal Server Error\n${message}\n`);
      else res.destroy();
    });

    /** A blob from the local blobs folder: its bytes, digest and Range, as a store would answer. */
    async function serveBlobFile(file: string, digest: string): Promise<void> {
      const fh = await fsp.open(file, 'r');
      let streaming = false;
      try {
        const size = (await fh.stat()).size;
        const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, size);
        if (range === 'unsatisfiable') return sendText(416, '416 Range Not Satisfiable\n', { 'Content-Range': `bytes */${size}` });
        const { start, end } = range ?? { start: 0, end: size - 1 };
        const length = size === 0 ? 0 : end - start + 1;
        res.writeHead(range ? 206 : 200, {
          'Content-Type': 'application/octet-stream',
          'Docker-Content-Digest': digest,
          'Accept-Ranges': 'bytes',
          'Content-Length': String(length),
          ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
        });
        if (method === 'HEAD' || length === 0) return void res.end();
        const stream = fh.createReadStream({ start, end, autoClose: true });
        streaming = true;
        stream.on('data', (chunk: string | Buffer) => (sent += chunk.length));
        await pipeline(stream, res).catch(() => res.destroy());
      } finally {
        if (!streaming) await fh.close();
      }
    }

    async function respond(): Promise<void> {
      if (method !== 'GET' && method !== 'HEAD') {
        sendText(405, '405 Method Not Allowed (this registry is read-only)\n', { Allow: 'GET, HEAD' });
        return;
      }
      const cut = rawUrl.search(/[?#]/u);
      const rawPath = cut === -1 ? rawUrl : rawUrl.slice(0, cut);
      const query = cut !== -1 && rawUrl[cut] === '?' ? rawUrl.slice(cut) : '';
      if (!rawPath.startsWith('/')) return sendText(400, '400 Bad Request\n');

      // Decode exactly once: `%252e` stays the literal name `%2e`, never a second `.`.
      let urlPath: string;
      try {
        urlPath = decodeURIComponent(rawPath);
      } catch {
        return sendText(400, '400 Bad Request (malformed percent-encoding)\n');
      }
      const segments = urlPath.split('/').slice(1);
      if (/[\0\\]/u.test(urlPath) || segments.some((s) => s === '..' || s === '.')) {
        return sendText(403, '403 Forbidden\n');
      }
      // `//` would also make a `//host/` Location on the slash redirect (an open redirect).
      if (segments.slice(0, -1).some((s) => s === '')) return sendText(404, `404 Not Found: ${urlPath}\n`);
      const notFound = (): void => {
        // Under /v2/ a registry's answer (the OCI error body, as every host writer renders it);
        // elsewhere the site's own 404.
        const kind = notFoundKind(urlPath, (name) => fs.existsSync(path.join(root, 'v2', ...name.split('/'), 'tags', 'list')));
        if (kind) sendText(404, notFoundBody(kind), { 'Content-Type': ERROR_CONTENT_TYPE, 'X-Content-Type-Options': 'nosniff' });
        else sendText(404, `404 Not Found: ${urlPath}\n`);
      };
      // Blobs in an object store: sent there (307 keeps a HEAD a HEAD), or served from the local folder.
      const blob = await blobs.answer(urlPath);
      if (blob?.location) {
        res.writeHead(307, { Location: blob.location, 'Content-Length': '0' });
        res.end();
        return;
      }
      if (blob?.file) return serveBlobFile(blob.file, blob.digest);
      if (blob) return notFound();

      const target = path.resolve(root, `.${urlPath}`);
      if (!isInside(root, target)) return sendText(403, '403 Forbidden\n');
      let real: string;
      try {
        real = await fsp.realpath(target);
      } catch (e) {
        const code = errnoCode(e);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return notFound();
        throw e;
      }
      // A symlink may point anywhere; only what resolves inside the served directory is served.
      if (!isInside(root, real)) return sendText(403, '403 Forbidden\n');

      let file = real;
      let st = await fsp.stat(real);
      if (st.isDirectory()) {
        if (!urlPath.endsWith('/')) {
          res.writeHead(301, { Location: `${rawPath}/${query}`, 'Content-Length': '0' });
          res.end();
          return;
        }
        try {
          file = await fsp.realpath(path.join(real, 'index.html'));
          st = await fsp.stat(file);
        } catch {
          return notFound();
        }
        if (!isInside(root, file)) return sendText(403, '403 Forbidden\n');
      } else if (urlPath.endsWith('/')) {
        return notFound(); // a file is not a directory: `/v2/_catalog/` is not `/v2/_catalog`
      }
      if (!st.isFile()) return notFound();
      if (path.dirname(file) === root && CONFIG_FILES.has(path.basename(file).toLowerCase())) return notFound();

      let rules: HeaderRuleIndex;
      try {
        rules = await rulesNow();
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        log?.(`registrish serve: ${message}`);
        return sendText(500, `500 Internal Server Error: cannot apply _headers\n${message}\n`);
      }

      const fh = await fsp.open(file, 'r');
      let streaming = false;
      try {
        const size = (await fh.stat()).size; // from the open file: length and bytes agree
        const headers: Record<string, string> = {};
        // A site built for another host (nginx, Apache) has no `_headers`: its registry URLs get
        // the headers every host writer renders, from the paths file the build left.
        const described = cache?.key === 'missing' ? await blobs.described(urlPath) : undefined;
        for (const [name, value] of described ? headersFor(described) : matchHeaders(rules, urlPath)) {
          if (!HOST_OWNED_HEADERS.has(name.toLowerCase())) headers[name] = value;
        }
        // No rule: the site's own pages get their type from the extension, as Netlify does; a
        // registry path gets a visibly wrong type (guessing `application/json` would hide a missing rule).
        if (!Object.keys(headers).some((n) => n.toLowerCase() === 'content-type')) {
          headers['Content-Type'] = (!urlPath.startsWith('/v2/') && SITE_TYPES[path.extname(file).toLowerCase()]) || 'application/octet-stream';
        }
        headers['Accept-Ranges'] = 'bytes';

        const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, size);
        if (range === 'unsatisfiable') {
          return sendText(416, '416 Range Not Satisfiable\n', { 'Content-Range': `bytes */${size}`, 'Accept-Ranges': 'bytes' });
        }
        const { start, end } = range ?? { start: 0, end: size - 1 };
        const length = size === 0 ? 0 : end - start + 1;
        headers['Content-Length'] = String(length);
        if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
        res.writeHead(range ? 206 : 200, headers);
        if (method === 'HEAD' || length === 0) {
          res.end();
          return;
        }
        // Streamed: layers can be hundreds of MB.
        const stream = fh.createReadStream({ start, end, autoClose: true });
        streaming = true;
        stream.on('data', (chunk: string | Buffer) => {
          sent += chunk.length;
        });
        try {
          await pipeline(stream, res);
        } catch {
          res.destroy(); // client went away or the file vanished mid-read
        }
      } finally {
        if (!streaming) await fh.close();
      }
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      const code = errnoCode(e);
      reject(
        new RegistrishError(`cannot listen on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the port is in use' : e.message}`, {
          cause: e,
          hint: code === 'EADDRINUSE' ? 'Pick another port with --port, or --port 0 for any free one.' : undefined,
        }),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${actual}`,
    port: actual,
    host,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections(); // keep-alive sockets would hold close() open
      }),
  };
}

/** The path this server answers local blobs under (`blobsDir`): a dot segment, never a site file. */
export const LOCAL_BLOBS_PATH = '/.registrish-blobs/';

interface BlobAnswer {
  digest: string;
  /** Send the client here (307). */
  location?: string;
  /** Serve this file (local blobs folder). */
  file?: string;
}

/**
 * Blob redirects of the site, from the paths file the build left in `v2/` (re-read when it
 * changes, as `_headers` is): undefined for a URL that is not a blob kept in a store.
 */
function blobRedirects(
  root: string,
  blobsDir: string | undefined,
): { answer(urlPath: string): Promise<BlobAnswer | undefined>; described(urlPath: string): Promise<PublishedPath | undefined> } {
  type Site = { redirect: BlobRedirect | undefined; byUrl: Map<string, PublishedPath> };
  let cache: { key: string; site: Promise<Site> } | undefined;
  const pathsFile = path.join(root, ...PATHS_FILE.split('/'));
  const siteNow = async (): Promise<Site> => {
    const st = await fsp.stat(pathsFile).catch(() => undefined);
    const key = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'missing';
    if (cache?.key !== key) {
      const read = st ? readPathsFile(root) : Promise.resolve([]);
      cache = { key, site: read.then((paths) => ({ redirect: blobRedirect(paths), byUrl: new Map(paths.map((p) => [p.urlPath, p])) })) };
    }
    return cache.site;
  };
  const redirectNow = async (): Promise<BlobRedirect | undefined> => (await siteNow()).redirect;
  const digestRe = new RegExp(`^(?:${DIGEST_PATTERN})$`, 'u');
  return {
    async answer(urlPath) {
      if (blobsDir !== undefined && urlPath.startsWith(LOCAL_BLOBS_PATH)) {
        const digest = urlPath.slice(LOCAL_BLOBS_PATH.length);
        if (!digestRe.test(digest)) return { digest };
        // The store's layout (blobs/<digest>), else the cache's and OCI layouts' (blobs/<algorithm>/<hex>).
        for (const file of [path.join(blobsDir, 'blobs', digest), digestPath(blobsDir, digest)]) {
          const st = await fsp.stat(file).catch(() => undefined);
          if (st?.isFile()) return { digest, file };
        }
        return { digest };
      }
      const m = /^\/v2\/(.+)\/blobs\/([^/]+)$/u.exec(urlPath);
      if (!m || !digestRe.test(m[2]!)) return undefined;
      const redirect = await redirectNow();
      if (!redirect || !redirect.repositories.includes(m[1]!)) return undefined;
      const digest = m[2]!;
      return { digest, location: blobsDir === undefined ? redirect.base + digest : LOCAL_BLOBS_PATH + digest };
    },
    async described(urlPath) {
      return (await siteNow()).byUrl.get(urlPath);
    },
  };
}
