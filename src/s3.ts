import { createHash, createHmac, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type Dispatcher } from 'undici';
import { HttpError, RegistrishError } from './errors.ts';
import { addSecret, redact } from './redact.ts';
import { firstHeader, parseRetryAfter, RETRYABLE_CODES, RETRYABLE_STATUSES, USER_AGENT } from './transport.ts';

// A minimal S3 client: AWS Signature V4 over undici, just the calls `deploy` needs
// (HEAD, PUT, DELETE, ListObjectsV2). Written here rather than pulling in the AWS SDK (tens of
// MB for four calls). Payloads are signed with their real SHA-256: a blob's digest already *is*
// that hash, so signing costs no extra read, the store checks the bytes it received, and no
// store that refuses UNSIGNED-PAYLOAD over plain HTTP gets in the way.

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3ClientOptions {
  /** `https://s3.eu-west-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`, `http://127.0.0.1:9000`. */
  endpoint: URL;
  region: string;
  bucket: string;
  credentials: S3Credentials;
  /** `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO-like stores, IP endpoints). */
  pathStyle: boolean;
  dispatcher: Dispatcher;
  /** Files larger than this are sent as a multipart upload. Default 64 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart uploads (S3: at least 5 MiB, at most 10,000 parts). Default 64 MiB. */
  partSize?: number;
  /** Retries after the first attempt (connection errors, 429, 5xx). Default 4. */
  maxRetries?: number;
  retryBaseMs?: number;
}

/** What a HEAD says about an existing object; undefined when it does not exist. */
export interface S3ObjectInfo {
  size: number;
  contentType?: string;
  cacheControl?: string;
  /** Lower-cased `x-amz-meta-*` names, without the prefix. */
  meta: Record<string, string>;
}

/** A request body that can be produced again for each retry (a file is re-opened, never buffered). */
export type S3Body =
  | { kind: 'buffer'; data: Buffer }
  | { kind: 'file'; path: string; size: number }
  /** Bytes start..end (inclusive) of a file: one part of a multipart upload. */
  | { kind: 'range'; path: string; start: number; end: number };

/** S3's hard limit for one PUT; putFile() sends larger files as a multipart upload. */
export const MAX_SINGLE_PUT = 5 * 1024 ** 3;
const MIB = 1024 * 1024;
const MAX_PARTS = 10_000;

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters, `/` kept between segments. */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function encodeQueryPart(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

export interface SignInput {
  method: string;
  url: URL;
  /** Lower-case names. Every one is signed (host and x-amz-* are added). */
  headers: Record<string, string>;
  payloadHash: string;
  region: string;
  credentials: S3Credentials;
  now?: Date;
  service?: string;
}

/**
 * AWS Signature Version 4 (header form). Returns the headers to send, Authorization included.
 * Canonical query keys and values are RFC 3986-encoded and sorted; the path is sent as given
 * (already encoded once: S3 does not double-encode).
 */
export function signV4(input: SignInput): Record<string, string> {
  const now = input.now ?? new Date();
  const amzDate = now.toISOString().replace(/[-:]/gu, '').replace(/\.\d{3}/u, '');
  const day = amzDate.slice(0, 8);
  const service = input.service ?? 's3';
  const headers: Record<string, string> = { ...input.headers, host: input.url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': input.payloadHash };
  if (input.credentials.sessionToken) headers['x-amz-security-token'] = input.credentials.sessionToken;
  const names = Object.keys(headers).map((n) => n.toLowerCase()).sort();
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v.trim().replace(/\s+/gu, ' ');
  const query = [...input.url.searchParams.entries()]
    .map(([k, v]) => [encodeQueryPart(k), encodeQueryPart(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    input.method,
    input.url.pathname || '/',
    query,
    names.map((n) => `${n}:${lower[n]}\n`).join(''),
    names.join(';'),
    input.payloadHash,
  ].join('\n');
  const scope = `${day}/${input.region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const kDate = hmac(`AWS4${input.credentials.secretAccessKey}`, day);
  const kSigning = hmac(hmac(hmac(kDate, input.region), service), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(toSign, 'utf8').digest('hex');
  headers['authorization'] =
    `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}


interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export class S3Client {
  private readonly o: S3ClientOptions;
  /** HEADs answered 403 (see head()). */
  forbiddenHeads = 0;

  constructor(options: S3ClientOptions) {
    this.o = options;
    // Registered before the first request, so no message built afterwards can carry them.
    addSecret(options.credentials.secretAccessKey);
    addSecret(options.credentials.sessionToken);
  }

  /** The URL of a key (also what error messages name). */
  objectUrl(key: string): URL {
    const e = this.o.endpoint;
    const base = e.pathname.replace(/\/+$/u, '');
    if (this.o.pathStyle) return new URL(`${e.protocol}//${e.host}${base}/${encodeKey(this.o.bucket)}/${encodeKey(key)}`);
    return new URL(`${e.protocol}//${this.o.bucket}.${e.host}${base}/${encodeKey(key)}`);
  }

  private bucketUrl(): URL {
    return this.objectUrl('');
  }

  async head(key: string): Promise<S3ObjectInfo | undefined> {
    const res = await this.send('HEAD', this.objectUrl(key), {}, undefined, EMPTY_SHA256);
    if (res.status === 404) return undefined;
    // Without s3:ListBucket, S3 answers 403 for a missing key, and a HEAD answer has no body to
    // tell that from refused credentials: count it as missing, and let the PUT (whose error
    // body names the cause) decide.
    if (res.status === 403) {
      this.forbiddenHeads++;
      return undefined;
    }
    if (res.status !== 200) throw this.fail('HEAD', key, res);
    const h = res.headers;
    const one = (n: string): string | undefined => {
      const v = h[n];
      return Array.isArray(v) ? v[0] : v;
    };
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(h)) {
      if (k.toLowerCase().startsWith('x-amz-meta-') && v !== undefined) meta[k.toLowerCase().slice('x-amz-meta-'.length)] = String(v);
    }
    return { size: Number(one('content-length') ?? -1), contentType: one('content-type'), cacheControl: one('cache-control'), meta };
  }

  /** Single PUT. `sha256Hex` is the payload's SHA-256 (signed: the store verifies the bytes). */
  async put(key: string, body: S3Body, sha256: string, headers: Record<string, string>): Promise<void> {
    const size = body.kind === 'buffer' ? body.data.length : body.kind === 'file' ? body.size : body.end - body.start + 1;
    if (size > MAX_SINGLE_PUT) {
      throw new RegistrishError(`${key}: ${size} bytes is over S3's 5 GiB limit for a single PUT`, {
        hint: 'Use putFile(), which switches to a multipart upload for large files.',
      });
    }
    const res = await this.send('PUT', this.objectUrl(key), { ...headers, 'content-length': String(size) }, body, sha256);
    if (res.status !== 200) throw this.fail('PUT', key, res);
  }

  /**
   * Uploads a file: one PUT up to the multipart threshold, else a multipart upload whose parts are
   * read from disk one at a time (each part is hashed, then streamed: never held in memory).
   */
  async putFile(key: string, file: string, size: number, sha256: string, headers: Record<string, string>): Promise<void> {
    const threshold = this.o.multipartThreshold ?? 64 * MIB;
    if (size <= threshold) return this.put(key, { kind: 'file', path: file, size }, sha256, headers);
    // Few enough parts for S3's limit of 10,000, and never under its 5 MiB minimum.
    const partSize = Math.max(this.o.partSize ?? 64 * MIB, Math.ceil(size / MAX_PARTS), 5 * MIB);
    const created = await this.send('POST', this.withQuery(key, { uploads: '' }), headers, undefined, EMPTY_SHA256);
    const uploadId = /<UploadId>([\s\S]*?)<\/UploadId>/u.exec(created.text)?.[1];
    if (created.status !== 200 || !uploadId) throw this.fail('CreateMultipartUpload', key, created);
    const id = xmlDecode(uploadId);
    try {
      const etags: string[] = [];
      // The store checks each part against its signed hash, never the whole object: hash the whole
      // file from the same reads, so an object whose bytes differ from `sha256` (the file changed
      // since it was planned) is aborted, never completed with a digest metadata it does not match.
      const whole = createHash('sha256');
      for (let start = 0, n = 1; start < size; start += partSize, n++) {
        const end = Math.min(size, start + partSize) - 1;
        const url = this.withQuery(key, { partNumber: String(n), uploadId: id });
        const hash = await hashRange(file, start, end, whole);
        const res = await this.send('PUT', url, { 'content-length': String(end - start + 1) }, { kind: 'range', path: file, start, end }, hash);
        const etag = res.headers['etag'];
        if (res.status !== 200 || typeof etag !== 'string') throw this.fail(`UploadPart ${n}`, key, res);
        etags.push(etag);
      }
      const actual = whole.digest('hex');
      if (actual !== sha256) {
        throw new RegistrishError(`${key}: ${file} no longer has the expected sha256 ${sha256} (read ${actual}); the upload was aborted`, {
          hint: 'The file changed during the deploy: rebuild the site, then deploy again.',
        });
      }
      const xml =
        '<CompleteMultipartUpload>' +
        etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEncode(e)}</ETag></Part>`).join('') +
        '</CompleteMultipartUpload>';
      const body = Buffer.from(xml);
      const done = await this.send('POST', this.withQuery(key, { uploadId: id }), { 'content-type': 'application/xml', 'content-length': String(body.length) }, { kind: 'buffer', data: body }, sha256Hex(body));
      // S3 may answer 200 and put the failure in the body.
      if (done.status !== 200 || /<Error>/u.test(done.text)) throw this.fail('CompleteMultipartUpload', key, done);
    } catch (err) {
      // Parts left behind are billed until aborted.
      await this.send('DELETE', this.withQuery(key, { uploadId: id }), {}, undefined, EMPTY_SHA256).catch(() => undefined);
      throw err;
    }
  }

  private withQuery(key: string, query: Record<string, string>): URL {
    const u = this.objectUrl(key);
    u.search = Object.entries(query)
      .map(([k, v]) => `${encodeQueryPart(k)}=${encodeQueryPart(v)}`)
      .join('&');
    return u;
  }

  async delete(key: string): Promise<void> {
    const res = await this.send('DELETE', this.objectUrl(key), {}, undefined, EMPTY_SHA256);
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw this.fail('DELETE', key, res);
  }

  /** Every key under `prefix` (ListObjectsV2, all pages). */
  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    for (;;) {
      const u = this.bucketUrl();
      u.searchParams.set('list-type', '2');
      u.searchParams.set('prefix', prefix);
      if (token) u.searchParams.set('continuation-token', token);
      // URLSearchParams encodes spaces as '+', which S3 reads as a literal '+': encode it ourselves.
      u.search = [...u.searchParams.entries()].map(([k, v]) => `${encodeQueryPart(k)}=${encodeQueryPart(v)}`).join('&');
      const res = await this.send('GET', u, {}, undefined, EMPTY_SHA256);
      if (res.status !== 200) throw this.fail('LIST', prefix, res, 'Deleting needs s3:ListBucket on the bucket.');
      for (const m of res.text.matchAll(/<Contents>[\s\S]*?<Key>([\s\S]*?)<\/Key>[\s\S]*?<\/Contents>/gu)) keys.push(xmlDecode(m[1]!));
      const truncated = /<IsTruncated>true<\/IsTruncated>/u.test(res.text);
      const next = /<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/u.exec(res.text)?.[1];
      if (!truncated || !next) return keys;
      token = xmlDecode(next);
    }
  }

  /** One request, signed afresh on each attempt; retryable failures retried with backoff. */
  private async send(method: string, url: URL, headers: Record<string, string>, body: S3Body | undefined, payloadHash: string): Promise<RawResponse> {
    const maxRetries = this.o.maxRetries ?? 4;
    const base = this.o.retryBaseMs ?? 500;
    for (let attempt = 0; ; attempt++) {
      const signed = signV4({ method, url, headers, payloadHash, region: this.o.region, credentials: this.o.credentials });
      // Not signed, as the AWS SDKs do: a proxy that rewrites it must not break the signature.
      signed['user-agent'] = USER_AGENT;
      let res: RawResponse;
      try {
        const r = await request(url, {
          method: method as Dispatcher.HttpMethod,
          headers: signed,
          dispatcher: this.o.dispatcher,
          body:
            body === undefined
              ? undefined
              : body.kind === 'buffer'
                ? body.data
                : body.kind === 'file'
                  ? createReadStream(body.path)
                  : createReadStream(body.path, { start: body.start, end: body.end }),
        });
        // Bodies are small (XML errors, listings); a HEAD has none.
        const text = method === 'HEAD' ? '' : await r.body.text();
        res = { status: r.statusCode, headers: r.headers, text };
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (attempt < maxRetries && RETRYABLE_CODES.has(code)) {
          await sleep(backoff(base, attempt));
          continue;
        }
        // No cause attached: undici errors can carry the request, signed headers included.
        throw new RegistrishError(`${method} ${this.describe(url)}: ${redact(err instanceof Error ? err.message : String(err))}`, {
          hint: 'Check --endpoint-url (or AWS_ENDPOINT_URL) and the network.',
        });
      }
      if (RETRYABLE_STATUSES.has(res.status) && attempt < maxRetries) {
        // A store that says when to come back (429/503 Retry-After) is obeyed, within 30 s.
        const after = parseRetryAfter(firstHeader(res.headers, 'retry-after'));
        await sleep(after !== undefined ? Math.min(after, 30_000) : backoff(base, attempt));
        continue;
      }
      return res;
    }
  }

  /** Bucket and key, never the query string (listing tokens) nor any header. */
  private describe(url: URL): string {
    return redact(`${url.protocol}//${url.host}${decodeURIComponent(url.pathname)}`);
  }

  private fail(op: string, key: string, res: RawResponse, hint?: string): HttpError {
    const code = /<Code>([\s\S]*?)<\/Code>/u.exec(res.text)?.[1];
    const message = /<Message>([\s\S]*?)<\/Message>/u.exec(res.text)?.[1];
    // A HEAD answer has no body to explain itself: the status is all there is.
    const what = code ? ` ${code}${message ? `: ${xmlDecode(message)}` : ''}` : op === 'HEAD' ? ' (a HEAD answer carries no details)' : '';
    const where = `s3://${this.o.bucket}/${key}`;
    let h = hint;
    if (code === 'SignatureDoesNotMatch' || code === 'InvalidAccessKeyId') h = 'Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and --region.';
    if (code === 'AccessDenied' || (res.status === 403 && !code)) {
      h ??= 'Check the credentials; they need s3:PutObject (s3:PutObjectAcl with --acl), s3:GetObject, and s3:ListBucket and s3:DeleteObject for --delete.';
    }
    if (code === 'AccessControlListNotSupported' || code === 'NotImplemented') h ??= 'This bucket does not accept ACLs: deploy without --acl and make the bucket public by policy.';
    return new HttpError(redact(`${op} ${where}: ${res.status}${what}`), res.status, redact(where), { hint: h });
  }
}

function backoff(base: number, attempt: number): number {
  return Math.min(30_000, base * 2 ** attempt) * (0.5 + Math.random() / 2);
}

async function hashRange(file: string, start: number, end: number, whole?: Hash): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { start, end })) {
    h.update(chunk as Buffer);
    whole?.update(chunk as Buffer);
  }
  return h.digest('hex');
}

function xmlEncode(s: string): string {
  return s.replace(/[&<>"']/gu, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function xmlDecode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/gu, (_, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(Number(e.slice(1)));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!;
  });
}
