import http from 'node:http';
import { startS3rver } from './s3.ts';

// A real S3-compatible store for the `blobs` option: s3rver (it checks the access key id, not
// SigV4 signatures: test/deploy.test.ts checks those against AWS's vectors), with two fronts:
//   public: the bucket served at the root of a host, GET and HEAD only, as a public bucket URL
//           (R2's pub-….r2.dev, a CDN) is: `/<key>` → `/<bucket>/<key>`;
//   api:    the S3 API the build uploads through, forwarding everything unless a fault is set
//           (403 AccessDenied, 500, or a dropped connection on PUTs and multipart requests).

export const STORE_ACCESS_KEY = 'AKIDREGISTRISHBLOBS';
export const STORE_SECRET = 'blobs-Secret-4411-qrs';

export type StoreFault = 'none' | '403' | '500' | 'drop';

export interface Front {
  url: string;
  /** `METHOD path` of every request, in order. */
  seen: string[];
  close(): Promise<void>;
}

export interface TestStore {
  bucket: string;
  /** Public address of the bucket's root (ends in `/`). */
  publicUrl: string;
  /** S3 API endpoint (through the fault front). */
  endpoint: string;
  /** s3rver itself (path-style), for listing in tests. */
  s3Url: string;
  publicFront: Front;
  apiFront: Front & { fault: StoreFault };
  /** AWS_* variables for the build. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
}

export async function startTestStore(dir: string, bucket = 'blobs'): Promise<TestStore> {
  const s3 = await startS3rver(dir, [bucket], { accessKeyId: STORE_ACCESS_KEY, secretAccessKey: STORE_SECRET });
  const s3Url = s3.url;
  const target = new URL(s3Url);

  const publicSeen: string[] = [];
  const pub = http.createServer((req, res) => {
    publicSeen.push(`${req.method} ${req.url}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405).end();
    const headers: http.OutgoingHttpHeaders = {};
    for (const name of ['range', 'if-none-match']) if (req.headers[name]) headers[name] = req.headers[name];
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: `/${bucket}${req.url}`, headers }, (r) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(r.headers)) if (!['connection', 'keep-alive', 'transfer-encoding'].includes(k)) out[k] = v;
      res.writeHead(r.statusCode ?? 502, out);
      r.pipe(res);
    });
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    up.end();
  });
  const publicUrl = `${await listen(pub)}/`;

  const apiSeen: string[] = [];
  const apiFront = { url: '', seen: apiSeen, fault: 'none' as StoreFault, close: async () => {} };
  const api = http.createServer((req, res) => {
    apiSeen.push(`${req.method} ${req.url}`);
    const writes = req.method === 'PUT' || req.method === 'POST';
    if (writes && apiFront.fault !== 'none') {
      req.resume();
      if (apiFront.fault === 'drop') return void req.socket.destroy();
      const code = apiFront.fault === '403' ? 'AccessDenied' : 'InternalError';
      res.writeHead(Number(apiFront.fault), { 'content-type': 'application/xml' });
      return void res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>refused by the test store</Message></Error>`);
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(up);
  });
  apiFront.url = await listen(api);
  apiFront.close = closer(api);

  return {
    bucket,
    publicUrl,
    endpoint: apiFront.url,
    s3Url,
    publicFront: { url: publicUrl, seen: publicSeen, close: closer(pub) },
    apiFront,
    env: { AWS_ACCESS_KEY_ID: STORE_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: STORE_SECRET, AWS_REGION: 'us-east-1' },
    async stop() {
      await closer(pub)();
      await apiFront.close();
      await s3.close();
    },
  };
}
