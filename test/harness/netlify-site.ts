import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseAllHeaders, type Header } from '@netlify/headers-parser';
import { parseAllRedirects } from '@netlify/redirect-parser';
import redirector from 'netlify-redirector';

// A built site served the way Netlify serves it, decided by Netlify's own code: `_redirects` read by
// @netlify/redirect-parser and matched by netlify-redirector (the engine `netlify dev` uses),
// `_headers` read by @netlify/headers-parser. Static files first; a rule that is not forced (`!`)
// applies only where no file exists ("shadowing"); a 200 rule rewrites, a 404 rule serves its target
// with status 404, 301/302/303/307/308 redirect; no rule: the site's `404.html`, else a plain 404.
// Headers come from every `_headers` rule matching the request path (the later one winning), then
// the type by extension for a site file (extension-less registry files get no type of Netlify's).
// Single byte ranges. No proxying, no conditions (country, role, cookie): the registry writes none.

const TYPES: Record<string, string> = { '.html': 'text/html; charset=UTF-8', '.json': 'application/json', '.css': 'text/css; charset=UTF-8', '.txt': 'text/plain; charset=UTF-8' };
const CONFIG = new Set(['/_headers', '/_redirects']);

interface Match {
  to?: string;
  status?: number;
  force?: boolean;
  force404?: boolean;
}

export interface NetlifySite {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1 (a free port) with Netlify's semantics; rules are read once, at start. */
export async function startNetlifySite(dir: string): Promise<NetlifySite> {
  const headersFile = path.join(dir, '_headers');
  const redirectsFile = path.join(dir, '_redirects');
  const parsedHeaders = await parseAllHeaders({ headersFiles: fs.existsSync(headersFile) ? [headersFile] : [], configHeaders: [], minimal: false });
  const parsedRedirects = await parseAllRedirects({ redirectsFiles: fs.existsSync(redirectsFile) ? [redirectsFile] : [], configRedirects: [], minimal: false });
  const errors = [...parsedHeaders.errors, ...parsedRedirects.errors];
  if (errors.length) throw new Error(`Netlify's parsers refuse the site's rules: ${errors.map((e: Error) => e.message).join('; ')}`);
  const headerRules = parsedHeaders.headers.filter((h): h is Header => 'forRegExp' in h);
  const matcher = await redirector.parseJSON(JSON.stringify(parsedRedirects.redirects), {});

  /** The file a URL path names (a folder's index.html), if it exists inside `dir`. */
  const fileFor = (urlPath: string): string | undefined => {
    if (CONFIG.has(urlPath.toLowerCase())) return undefined;
    const p = path.join(dir, urlPath);
    if (!p.startsWith(dir)) return undefined;
    try {
      const st = fs.statSync(p);
      if (st.isFile()) return p;
      if (st.isDirectory() && fs.statSync(path.join(p, 'index.html')).isFile()) return path.join(p, 'index.html');
    } catch {
      return undefined;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://netlify.local');
    let urlPath: string;
    try {
      urlPath = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const send = (status: number, file: string | undefined, headerPath: string): void => {
      const headers: Record<string, string> = {};
      for (const rule of headerRules) if (rule.forRegExp.test(headerPath)) for (const [n, v] of Object.entries(rule.values)) headers[n.toLowerCase()] = v;
      const body = file ? fs.readFileSync(file) : Buffer.from('Not Found\n');
      headers['content-type'] ??= file ? (TYPES[path.extname(file)] ?? '') : 'text/plain; charset=UTF-8';
      if (headers['content-type'] === '') delete headers['content-type'];
      // One `bytes=N-[M]` range on a 200 (what podman and skopeo send to resume), as Netlify serves.
      const range = status === 200 ? /^bytes=(\d+)-(\d*)$/u.exec(String(req.headers.range ?? '')) : null;
      let part = body;
      if (range && Number(range[1]) < body.length) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
        part = body.subarray(start, end + 1);
        headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
        status = 206;
      }
      headers['content-length'] = String(part.length);
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : part);
    };
    const file = fileFor(urlPath);
    const m = matcher.match({ scheme: 'http', host: url.host, path: url.pathname, query: url.search.slice(1), getHeader: (n: string) => String(req.headers[n.toLowerCase()] ?? ''), getCookie: () => '' }) as Match | null;
    if (m && !m.force404 && m.to !== undefined && (m.force || !file)) {
      const status = m.status ?? 301;
      if ([301, 302, 303, 307, 308].includes(status)) {
        res.writeHead(status, { location: m.to, 'content-length': '0' }).end();
        return;
      }
      const target = fileFor(decodeURIComponent(new URL(m.to, 'http://netlify.local').pathname));
      if (target) return send(status, target, urlPath);
    }
    if (file) return send(200, file, urlPath);
    return send(404, fileFor('/404.html'), urlPath);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
