import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseAllHeaders } from '@netlify/headers-parser';

// A second static server with Netlify's header semantics, apart from `registrish serve` (src/serve,
// whose matcher is its own code): `_headers` read by @netlify/headers-parser itself, and for each
// request every rule whose `forRegExp` (the parser's own) matches applied in file order, the later
// one winning per header name — what `netlify dev` does with the parser's output (headersForPath).
// Files only, GET and HEAD, Content-Length always; bound to 127.0.0.1 on a free port.

export interface NetlifyParserServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startNetlifyParserServer(dir: string): Promise<NetlifyParserServer> {
  const { headers, errors } = await parseAllHeaders({ headersFiles: [path.join(dir, '_headers')], configHeaders: [], minimal: false });
  if (errors.length) throw new Error(`Netlify's parser: ${errors.map((e) => e.message).join('; ')}`);
  const rules = headers.filter((h) => 'forRegExp' in h);
  const server = http.createServer((req, res) => {
    void (async () => {
      const urlPath = decodeURIComponent((req.url ?? '/').replace(/[?#].*$/su, ''));
      const file = path.join(dir, urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath);
      const st = file.startsWith(`${dir}${path.sep}`) && !urlPath.split('/').includes('..') ? await stat(file).catch(() => undefined) : undefined;
      if (!st?.isFile() || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(st?.isFile() ? 405 : 404, { 'Content-Type': 'application/json', 'Content-Length': '0' }).end();
        return;
      }
      const out = new Map<string, [string, string]>([['content-type', ['Content-Type', 'application/octet-stream']]]);
      for (const rule of rules) {
        if (rule.forRegExp.test(urlPath)) for (const [n, v] of Object.entries(rule.values)) out.set(n.toLowerCase(), [n, String(v)]);
      }
      res.writeHead(200, { ...Object.fromEntries(out.values()), 'Content-Length': String(st.size) });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
