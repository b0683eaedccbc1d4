// s3rver (an S3-compatible server, a devDependency) on 127.0.0.1 for the deploy tests, and a front
// that sees every request deploy sends: it can kill the deploying process at the instant a chosen
// request arrives, has sent part of its body, or was answered.
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

export const S3_ACCESS_KEY = 'AKIDREGISTRISHTEST';
export const S3_SECRET = 'deploy-Secret-7781-xyz';

interface S3rverLike {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

export interface S3Server {
  url: string;
  close(): Promise<void>;
}

/**
 * s3rver's listing continuation tokens are encrypted with single DES, which OpenSSL 3 keeps in its
 * legacy provider only: without this, a listing longer than one page answers 500. Three-key 3DES
 * with three equal keys is the same cipher. Patched once per process.
 */
function desForS3rver(): void {
  const crypto = require('node:crypto') as Record<'createCipheriv' | 'createDecipheriv', (alg: string, key: Buffer, iv: Buffer) => unknown>;
  for (const name of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = crypto[name];
    if ((original as { registrishDes?: boolean }).registrishDes) continue;
    const patched = (alg: string, key: Buffer, iv: Buffer) => (alg === 'des' ? original('des-ede3-cbc', Buffer.concat([key, key, key]), iv) : original(alg, key, iv));
    (patched as { registrishDes?: boolean }).registrishDes = true;
    crypto[name] = patched;
  }
}

/** s3rver with `buckets`, storing under `dir/s3`, accepting `credentials` (S3_ACCESS_KEY / S3_SECRET by default). */
export async function startS3rver(
  dir: string,
  buckets: string[],
  credentials: { accessKeyId: string; secretAccessKey: string } = { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET },
): Promise<S3Server> {
  let S3rver: new (o: object) => S3rverLike;
  try {
    S3rver = require('s3rver') as typeof S3rver;
  } catch {
    throw new Error('s3rver (the S3-compatible test server) is missing: run "npm install" (it is a devDependency)');
  }
  // s3rver looks the access key id up in its account registry: give it credentials of our own.
  (require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: { createKeyPair(a: string, s: string): void } }).DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
  desForS3rver();
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', directory: path.join(dir, 's3'), silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await s3.run();
  return { url: `http://127.0.0.1:${port}`, close: () => s3.close() };
}

/** When, in the life of request number `request` (1-based), the front calls `onInstant`. */
export interface Instant {
  request: number;
  /** Count only the requests whose `METHOD path` matches (default: every request). */
  match?: RegExp;
  /**
   * On arrival; after `bytes` bytes of its body (at least one chunk; at its end when shorter), before
   * the store has any of it; or once the store has done it, before the answer reaches the process.
   */
  at: 'arrival' | 'body' | 'answered';
  bytes?: number;
}

export interface S3Front {
  endpoint: string;
  /** `METHOD path` of every request seen since the last arm(). */
  seen: string[];
  /** Calls `onInstant` once, at `instant`; requests after that are refused (the process is dead). */
  arm(instant: Instant | undefined, onInstant: () => void): void;
  close(): Promise<void>;
}

/**
 * A front for s3rver. It forwards a request only once its whole body has arrived: s3rver writes an
 * object in place while the body streams, so an upload cut short would leave a partial object, where
 * S3 (and R2, MinIO) make an object visible only when its upload completed.
 */
export async function startS3Front(storeUrl: string): Promise<S3Front> {
  const target = new URL(storeUrl);
  const seen: string[] = [];
  let instant: Instant | undefined;
  let fire: (() => void) | undefined;
  let fired = false;
  let counted = 0;
  const trigger = (): void => {
    if (fired) return;
    fired = true;
    fire?.();
  };
  const server = http.createServer((req, res) => {
    const line = `${req.method} ${req.url}`;
    seen.push(line);
    if (!instant?.match || instant.match.test(line)) counted++;
    const n = instant?.match && !instant.match.test(line) ? -1 : counted;
    if (fired) return void req.socket.destroy();
    if (instant?.request === n && instant.at === 'arrival') return void (trigger(), req.socket.destroy());
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (instant?.request === n && instant.at === 'body' && received >= (instant.bytes ?? 0)) trigger();
    });
    req.on('error', () => {});
    req.on('end', () => {
      // A body shorter than `bytes` (or none): killed once it was all sent, before the store has it.
      if (instant?.request === n && instant.at === 'body') trigger();
      if (fired) return void req.socket.destroy();
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        const body: Buffer[] = [];
        r.on('data', (c: Buffer) => body.push(c));
        r.on('end', () => {
          if (instant?.request === n && instant.at === 'answered') {
            // The store did it; the deploy dies before it hears so.
            trigger();
            return void req.socket.destroy();
          }
          if (res.destroyed) return;
          res.writeHead(r.statusCode ?? 502, r.headers);
          res.end(Buffer.concat(body));
        });
      });
      up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    arm(i, onInstant) {
      seen.length = 0;
      counted = 0;
      instant = i;
      fire = onInstant;
      fired = false;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
