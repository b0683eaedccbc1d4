import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AwsV4Signer } from 'aws4fetch';
import { HttpError, RegistrishError } from '../util/errors.ts';
import { addSecret, redact } from '../util/redact.ts';
import { Transport, type BodyFactory, type Method, type WriteMethod } from '../http/transport.ts';

// A minimal S3 client, just the calls `deploy` needs (HEAD, GET, PUT, DELETE, ListObjectsV2): signed
// by aws4fetch's AwsV4Signer (not the AWS SDK: tens of MB for four calls), sent through the
// shared Transport (retries, Retry-After, redirects, timeouts). Payloads are signed with their
// real SHA-256: a blob's digest already *is* that hash, so signing costs no extra read, the store
// checks the bytes it received, and no store that refuses UNSIGNED-PAYLOAD over plain HTTP gets in the way.

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
  /** Sees the bytes of request bodies as they are read from disk (progress lines). */
  onBodyBytes?: (n: number) => void;
}

/** What a HEAD says about an existing object; undefined when it does not exist. */
export interface S3ObjectInfo {
  size: number;
  contentType?: string;
  cacheControl?: string;
  /** Lower-cased `x-amz-meta-*` names, without the prefix. */
  meta: Record<string, string>;
  /** Without quotes (normalizeEtag). */
  etag?: string;
  /** Last-Modified, ms since the epoch. */
  lastModified?: number;
}

/** One object of a listing (ListObjectsV2 shows no headers nor metadata). */
export interface S3ListedObject {
  key: string;
  size: number;
  /** Without quotes (normalizeEtag). */
  etag: string;
  /** LastModified, ms since the epoch (NaN when the store sent none). */
  lastModified: number;
}

/** What the store said when it stored an object: its ETag and the time of its answer. */
export interface S3Stored {
  /** Without quotes (normalizeEtag); undefined when the store sent none. */
  etag?: string;
  /** The answer's `Date` header, ms since the epoch: the object was stored no later than this. */
  date?: number;
}

/** Requests sent, by kind (each attempt counts: a retried request counts twice). */
export interface S3RequestCounts {
  list: number;
  head: number;
  get: number;
  put: number;
  delete: number;
  /** CreateMultipartUpload, UploadPart, CompleteMultipartUpload and AbortMultipartUpload. */
  multipart: number;
}
export type S3RequestKind = keyof S3RequestCounts;

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

/** The fields of one `<Contents>` of a listing that deploy reads. */
const LISTED_FIELDS = {
  Key: /<Key>([\s\S]*?)<\/Key>/u,
  Size: /<Size>([\s\S]*?)<\/Size>/u,
  ETag: /<ETag>([\s\S]*?)<\/ETag>/u,
  LastModified: /<LastModified>([\s\S]*?)<\/LastModified>/u,
};

/** An ETag as listings and answers spell it, without quotes (nor a weak `W/`), for comparison. */
export function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^W\//u, '').replace(/^"(.*)"$/u, '$1');
}

function oneHeader(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** ETag and Date of a store's answer to a PUT or CompleteMultipartUpload. */
function storedFrom(res: RawResponse, etagText?: string): S3Stored {
  const etag = etagText ?? oneHeader(res.headers, 'etag');
  const date = Date.parse(oneHeader(res.headers, 'date') ?? '');
  return { etag: etag ? normalizeEtag(etag) : undefined, date: Number.isFinite(date) ? date : undefined };
}

/** RFC 3986 encoding as S3 wants it: everything but unreserved characters, `/` kept between segments. */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function encodeQueryPart(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

export interface SignInput {
  method: string;
  url: URL;
  /** Lower-case names. Every one is signed (host and x-amz-* are added). */
  headers: Record<string, string>;
  /** Hex SHA-256 of the payload; never UNSIGNED-PAYLOAD. */
  payloadHash: string;
  region: string;
  credentials: S3Credentials;
  now?: Date;
  service?: string;
}

/**
 * AWS Signature Version 4 (header form) by aws4fetch: the headers to send, Authorization included
 * (Host is the HTTP client's). For s3, aws4fetch decodes the path and encodes it once, as S3 wants;
 * `singleEncode` stays off (it would sign the decoded path). It reads the query through
 * URLSearchParams, so a literal `+` must be sent as `%2B` (encodeQueryPart), never raw.
 */
export async function signV4(input: SignInput): Promise<Record<string, string>> {
  // aws4fetch would sign anything else as UNSIGNED-PAYLOAD: the store would not check the bytes.
  if (!/^[0-9a-f]{64}$/u.test(input.payloadHash)) throw new TypeError('signV4: payloadHash must be a hex SHA-256');
  const signer = new AwsV4Signer({
    method: input.method,
    url: input.url.href,
    headers: { ...input.headers, 'x-amz-content-sha256': input.payloadHash },
    accessKeyId: input.credentials.accessKeyId,
    secretAccessKey: input.credentials.secretAccessKey,
    sessionToken: input.credentials.sessionToken,
    service: input.service ?? 's3',
    region: input.region,
    datetime: (input.now ?? new Date()).toISOString().replace(/[-:]|\.\d{3}/gu, ''),
    // Sign every header we send (Content-Type, Content-Length, Range too), as botocore does:
    // aws4fetch leaves some out by default.
    allHeaders: true,
  });
  const { headers } = await signer.sign();
  return Object.fromEntries(headers);
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export class S3Client {
  private readonly o: S3ClientOptions;
  private readonly transport: Transport;
  /** HEADs answered 403 (see head()). */
  forbiddenHeads = 0;
  /** Every request sent (each attempt), by kind. */
  readonly requests: S3RequestCounts = { list: 0, head: 0, get: 0, put: 0, delete: 0, multipart: 0 };
  /** Request body bytes sent (each attempt), and response body bytes read. */
  sentBytes = 0;
  receivedBytes = 0;

  constructor(options: S3ClientOptions) {
    this.o = options;
    // Registered before the first request, so no message built afterwards can carry them.
    addSecret(options.credentials.secretAccessKey);
    addSecret(options.credentials.sessionToken);
    this.transport = new Transport({
      dispatcher: options.dispatcher,
      maxRetries: options.maxRetries ?? 4,
      retryBaseMs: options.retryBaseMs ?? 500,
      // A store that says when to come back (429/503 Retry-After) is obeyed, within 30 s.
      retryAfterMaxMs: 30_000,
      retryAfterBeyondMax: 'wait-max',
      // The last answer's XML body names the cause (fail() reads it).
      throwOnRetryableStatus: false,
    });
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
    const res = await this.send('head', 'HEAD', this.objectUrl(key), {}, undefined, EMPTY_SHA256);
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
    const one = (n: string): string | undefined => oneHeader(h, n);
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(h)) {
      if (k.toLowerCase().startsWith('x-amz-meta-') && v !== undefined) meta[k.toLowerCase().slice('x-amz-meta-'.length)] = String(v);
    }
    const etag = one('etag');
    const lastModified = Date.parse(one('last-modified') ?? '');
    return {
      size: Number(one('content-length') ?? -1),
      contentType: one('content-type'),
      cacheControl: one('cache-control'),
      meta,
      etag: etag ? normalizeEtag(etag) : undefined,
      lastModified: Number.isFinite(lastModified) ? lastModified : undefined,
    };
  }

  /** A small object's body as text; undefined when it does not exist. */
  async get(key: string): Promise<string | undefined> {
    const res = await this.send('get', 'GET', this.objectUrl(key), {}, undefined, EMPTY_SHA256);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.fail('GET', key, res);
    return res.text;
  }

  /** Single PUT. `sha256Hex` is the payload's SHA-256 (signed: the store verifies the bytes). */
  async put(key: string, body: S3Body, sha256: string, headers: Record<string, string>): Promise<S3Stored> {
    const size = body.kind === 'buffer' ? body.data.length : body.kind === 'file' ? body.size : body.end - body.start + 1;
    if (size > MAX_SINGLE_PUT) {
      throw new RegistrishError(`${key}: ${size} bytes is over S3's 5 GiB limit for a single PUT`, {
        hint: 'Use putFile(), which switches to a multipart upload for large files.',
      });
    }
    const res = await this.send('put', 'PUT', this.objectUrl(key), { ...headers, 'content-length': String(size) }, body, sha256);
    if (res.status !== 200) throw this.fail('PUT', key, res);
    return storedFrom(res);
  }

  /**
   * Uploads a file: one PUT up to the multipart threshold, else a multipart upload whose parts are
   * read from disk one at a time (each part is hashed, then streamed: never held in memory).
   */
  async putFile(key: string, file: string, size: number, sha256: string, headers: Record<string, string>): Promise<S3Stored> {
    const threshold = this.o.multipartThreshold ?? 64 * MIB;
    if (size <= threshold) return this.put(key, { kind: 'file', path: file, size }, sha256, headers);
    // Few enough parts for S3's limit of 10,000, and never under its 5 MiB minimum.
    const partSize = Math.max(this.o.partSize ?? 64 * MIB, Math.ceil(size / MAX_PARTS), 5 * MIB);
    const created = await this.send('multipart', 'POST', this.withQuery(key, { uploads: '' }), headers, undefined, EMPTY_SHA256);
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
        const res = await this.send('multipart', 'PUT', url, { 'content-length': String(end - start + 1) }, { kind: 'range', path: file, start, end }, hash);
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
      const done = await this.send('multipart', 'POST', this.withQuery(key, { uploadId: id }), { 'content-type': 'application/xml', 'content-length': String(body.length) }, { kind: 'buffer', data: body }, sha256Hex(body));
      // S3 may answer 200 and put the failure in the body.
      if (done.status !== 200 || /<Error>/u.test(done.text)) throw this.fail('CompleteMultipartUpload', key, done);
      const etag = /<ETag>([\s\S]*?)<\/ETag>/u.exec(done.text)?.[1];
      return storedFrom(done, etag === undefined ? undefined : xmlDecode(etag));
    } catch (err) {
      // Parts left behind are billed until aborted.
      await this.send('multipart', 'DELETE', this.withQuery(key, { uploadId: id }), {}, undefined, EMPTY_SHA256).catch(() => undefined);
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
    const res = await this.send('delete', 'DELETE', this.objectUrl(key), {}, undefined, EMPTY_SHA256);
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw this.fail('DELETE', key, res);
  }

  /** Every key under `prefix` (ListObjectsV2, all pages). */
  async list(prefix: string): Promise<string[]> {
    return (await this.listObjects(prefix)).map((o) => o.key);
  }

  /**
   * Every object under `prefix`, with its size, ETag and LastModified (ListObjectsV2, all pages of
   * `maxKeys`: 1000, the most S3 answers, unless a test asks for smaller pages).
   */
  async listObjects(prefix: string, opts: { maxKeys?: number } = {}): Promise<S3ListedObject[]> {
    const objects: S3ListedObject[] = [];
    let token: string | undefined;
    for (;;) {
      const query: Record<string, string> = { 'list-type': '2', prefix };
      if (opts.maxKeys !== undefined) query['max-keys'] = String(opts.maxKeys);
      if (token) query['continuation-token'] = token;
      const u = this.bucketUrl();
      // Encoded here, not by URLSearchParams: it writes spaces as '+', which S3 reads as a literal '+'.
      u.search = Object.entries(query)
        .map(([k, v]) => `${encodeQueryPart(k)}=${encodeQueryPart(v)}`)
        .join('&');
      const res = await this.send('list', 'GET', u, {}, undefined, EMPTY_SHA256);
      if (res.status !== 200) throw this.fail('LIST', prefix, res, 'Listing needs s3:ListBucket on the bucket.');
      for (const m of res.text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/gu)) {
        const field = (name: keyof typeof LISTED_FIELDS): string | undefined => LISTED_FIELDS[name].exec(m[1]!)?.[1];
        const key = field('Key');
        if (key === undefined) continue;
        objects.push({
          key: xmlDecode(key),
          size: Number(field('Size') ?? -1),
          etag: normalizeEtag(xmlDecode(field('ETag') ?? '')),
          lastModified: Date.parse(field('LastModified') ?? ''),
        });
      }
      const truncated = /<IsTruncated>true<\/IsTruncated>/u.test(res.text);
      const next = /<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/u.exec(res.text)?.[1];
      if (!truncated || !next) return objects;
      token = xmlDecode(next);
    }
  }

  /** One request, signed afresh on each attempt (x-amz-date changes); retries are the Transport's. */
  private async send(
    kind: S3RequestKind,
    method: Method | WriteMethod,
    url: URL,
    headers: Record<string, string>,
    body: S3Body | undefined,
    payloadHash: string,
  ): Promise<RawResponse> {
    const bodySize = body === undefined ? 0 : body.kind === 'buffer' ? body.data.length : body.kind === 'file' ? body.size : body.end - body.start + 1;
    try {
      const res = await this.transport.request(url, {
        method,
        headers,
        body: body === undefined ? undefined : bodyOf(body, this.o.onBodyBytes),
        // Bodies are small (XML errors, listings; a HEAD has none): read in the retry loop, so a
        // body cut off mid-way is retried like a failed request.
        readText: true,
        // The User-Agent is added after signing, as the AWS SDKs do: a proxy that rewrites it must not break the signature.
        // Called once per attempt: what is counted is what is sent, retries included.
        prepare: (req) => {
          this.requests[kind]++;
          if (req.hasBody) this.sentBytes += bodySize;
          return signV4({
            method: req.method,
            url: req.url,
            headers: req.headers,
            payloadHash: req.hasBody ? payloadHash : EMPTY_SHA256,
            region: this.o.region,
            credentials: this.o.credentials,
          });
        },
      });
      const text = res.text ?? '';
      this.receivedBytes += Buffer.byteLength(text);
      return { status: res.status, headers: res.headers, text };
    } catch (err) {
      // Redirect refusals carry no cause and a redacted URL: as they are.
      if (err instanceof HttpError) throw err;
      // No cause attached: undici errors can carry the request, signed headers included.
      const root = err instanceof RegistrishError && err.cause instanceof Error ? err.cause : err;
      throw new RegistrishError(`${method} ${this.describe(url)}: ${redact(root instanceof Error ? root.message : String(root))}`, {
        hint: 'Check --endpoint-url (or AWS_ENDPOINT_URL) and the network.',
      });
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

/** A body the Transport can send again on each attempt: a file is re-opened, never buffered. */
function bodyOf(b: S3Body, onBytes?: (n: number) => void): Buffer | BodyFactory {
  if (b.kind === 'buffer') return b.data;
  // Counted as the bytes pass (a 'data' listener on the file stream would start it flowing early).
  const tap = (stream: Readable): Readable =>
    onBytes
      ? pipeline(stream, new Transform({ transform: (c: Buffer, _e, cb) => (onBytes(c.length), cb(null, c)) }), () => {})
      : stream;
  if (b.kind === 'file') return () => tap(createReadStream(b.path));
  return () => tap(createReadStream(b.path, { start: b.start, end: b.end }));
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
