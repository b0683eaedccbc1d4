import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createAgent } from '../http/transport.ts';
import { DIGEST_PATTERN } from '../model/digest.ts';
import { blobKey } from '../publish/blob-store.ts';
import { mapLimit } from '../util/concurrency.ts';
import { HttpError, RegistrishError } from '../util/errors.ts';
import { IMMUTABLE_CACHE } from '../publish/headers.ts';
import { BLOB_TYPE } from '../publish/paths.ts';
import { redact } from '../util/redact.ts';
import type { Progress } from '../util/progress.ts';
import { S3Client, type S3Credentials, type S3RequestCounts } from './s3-client.ts';

// Blobs to an object store, one object per digest (`<prefix>blobs/<digest>`, shared by every
// repository): what the build does before it writes v2/ when the `blobs` option names a `store`,
// and what `registrish deploy --blobs` does for builds without credentials. What the store holds
// comes from one listing of `<prefix>blobs/`: a key is its content's digest, and every object we
// put was checked by the store against that digest (the payload hash is signed), so a listed key
// of the right size is that blob. Nothing is ever deleted here.

/** Where the store is and how to sign for it. */
export interface StoreConnection {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
  endpoint: URL;
  region: string;
  credentials: S3Credentials;
  pathStyle: boolean;
}

/** A blob to put: its digest, size and the file holding its bytes (the build's cache). */
export interface BlobFile {
  digest: string;
  size: number;
  file: string;
}

export interface BlobUploadOptions {
  connection: StoreConnection;
  blobs: BlobFile[];
  concurrency: number;
  dryRun?: boolean;
  log: (line: string) => void;
  progress?: Progress;
  retryBaseMs?: number;
}

export interface BlobUploadSummary {
  uploaded: number;
  /** Already in the store (listed with the right size, or found by a HEAD). */
  present: number;
  /** Bytes of the blobs uploaded. */
  bytes: number;
  requests: S3RequestCounts;
}

/** True for IP addresses and localhost: they have no bucket subdomains (path-style addressing). */
function isIpOrLocal(host: string): boolean {
  return host === 'localhost' || /^\d+\.\d+\.\d+\.\d+$/u.test(host) || host.startsWith('[');
}

/**
 * The store connection from the environment, as the AWS tools read it: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; region AWS_REGION or AWS_DEFAULT_REGION; endpoint
 * `endpoint`, else AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS S3 in the region.
 * `what` names the setting in errors (`[registrish] option "blobs.store"`).
 */
export function storeConnectionFromEnv(
  target: { bucket: string; prefix: string },
  endpointText: string | undefined,
  env: NodeJS.ProcessEnv,
  what: string,
): StoreConnection {
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if (!accessKeyId || !secretAccessKey) {
    throw new RegistrishError(`${what}: no credentials to upload blobs to s3://${target.bucket}/${target.prefix}`, {
      hint:
        'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) in the build environment ' +
        '(Netlify: Site configuration → Environment variables, marked secret), or leave "store" out and upload with `registrish deploy --blobs` where the credentials are.',
    });
  }
  const region = env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || 'us-east-1';
  const text = endpointText || env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || `https://s3.${region}.amazonaws.com`;
  let endpoint: URL;
  try {
    endpoint = new URL(text);
  } catch {
    throw new RegistrishError(`${what}: the S3 endpoint ${JSON.stringify(redact(text))} is not a URL`);
  }
  if ((endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') || endpoint.username || endpoint.password) {
    throw new RegistrishError(`${what}: the S3 endpoint must be an http(s) URL without credentials`);
  }
  return {
    ...target,
    endpoint,
    region,
    credentials: { accessKeyId, secretAccessKey, sessionToken: env['AWS_SESSION_TOKEN'] || undefined },
    // Dotted bucket names break TLS on virtual-hosted URLs; IPs and localhost have no bucket subdomains.
    pathStyle: isIpOrLocal(endpoint.hostname) || target.bucket.includes('.'),
  };
}

/** A 403 AccessDenied on the listing: credentials without s3:ListBucket, which HEADs can do without. */
function listingRefused(err: unknown): boolean {
  return err instanceof HttpError && err.status === 403 && /\bAccessDenied\b/u.test(err.message);
}

/**
 * Puts every blob the store lacks. Throws on the first refusal (after the client's retries), so a
 * build stops before it writes a manifest naming a blob the store does not hold.
 */
export async function uploadBlobs(o: BlobUploadOptions): Promise<BlobUploadSummary> {
  const c = o.connection;
  const agent = createAgent({ connections: Math.max(2, o.concurrency) });
  const client = new S3Client({
    endpoint: c.endpoint,
    region: c.region,
    bucket: c.bucket,
    credentials: c.credentials,
    pathStyle: c.pathStyle,
    dispatcher: agent,
    retryBaseMs: o.retryBaseMs,
    onBodyBytes: o.progress ? (n) => o.progress!.addBytes(n) : undefined,
  });
  const where = `s3://${c.bucket}/${c.prefix}blobs/`;
  const summary: BlobUploadSummary = { uploaded: 0, present: 0, bytes: 0, requests: client.requests };
  try {
    let listed: Map<string, number> | undefined;
    try {
      const objects = await client.listObjects(blobKey(c.prefix, ''));
      listed = new Map(objects.map((x) => [x.key, x.size]));
    } catch (err) {
      if (!listingRefused(err)) throw err;
      o.log(`warning: listing ${where} was refused (no s3:ListBucket): checking each blob with a HEAD instead; grant s3:ListBucket for a cheaper build`);
    }
    const unique = [...new Map(o.blobs.map((b) => [b.digest, b])).values()];
    // Largest first: the longest upload should not be the last one to start.
    unique.sort((a, b) => b.size - a.size);
    const missing: BlobFile[] = [];
    for (const b of unique) {
      const key = blobKey(c.prefix, b.digest);
      if (listed) {
        if (listed.get(key) === b.size) summary.present++;
        else missing.push(b);
      } else missing.push(b);
    }
    o.progress?.addWork(
      missing.reduce((n, b) => n + b.size, 0),
      missing.length,
    );
    await mapLimit(missing, o.concurrency, async (b) => {
      const key = blobKey(c.prefix, b.digest);
      if (!listed) {
        const info = await client.head(key);
        if (info && info.size === b.size) {
          summary.present++;
          o.progress?.itemDone(b.size);
          return;
        }
      }
      if (!o.dryRun) {
        // The payload hash is signed: a sha256 digest already is it; a sha512 blob is hashed once.
        const sha256 = b.digest.startsWith('sha256:') ? b.digest.slice('sha256:'.length) : await sha256OfFile(b.file);
        await client.putFile(key, b.file, b.size, sha256, {
          'content-type': BLOB_TYPE,
          'cache-control': IMMUTABLE_CACHE,
          'x-amz-meta-digest': b.digest,
        });
      }
      summary.uploaded++;
      summary.bytes += b.size;
      o.progress?.itemDone();
    });
  } finally {
    await agent.close();
  }
  return summary;
}

async function sha256OfFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface PruneSummary {
  /** Keys of blobs no manifest of the site names (deleted, or that would be with a dry run). */
  unreferenced: string[];
  kept: number;
  /** Objects under `<prefix>blobs/` that are not `<digest>` keys: never touched. */
  foreign: number;
}

/**
 * Blobs in the store that no manifest of this site names: listed (dry run, the default of the
 * command) or deleted. Only keys that are exactly `<prefix>blobs/<digest>` are ever considered; a
 * referenced digest is never deleted. A store shared by several sites must not be pruned from one.
 */
export async function pruneBlobs(o: { connection: StoreConnection; referenced: Set<string>; dryRun: boolean; concurrency: number; log: (line: string) => void }): Promise<PruneSummary> {
  const c = o.connection;
  const agent = createAgent({ connections: Math.max(2, o.concurrency) });
  const client = new S3Client({ endpoint: c.endpoint, region: c.region, bucket: c.bucket, credentials: c.credentials, pathStyle: c.pathStyle, dispatcher: agent });
  try {
    const base = blobKey(c.prefix, '');
    const keys = (await client.listObjects(base)).map((x) => x.key);
    const digestRe = new RegExp(`^(?:${DIGEST_PATTERN})$`, 'u');
    const blobs = keys.filter((k) => digestRe.test(k.slice(base.length)));
    const unreferenced = blobs.filter((k) => !o.referenced.has(k.slice(base.length))).sort();
    await mapLimit(unreferenced, o.concurrency, async (key) => {
      if (!o.dryRun) await client.delete(key);
      o.log(`${o.dryRun ? 'would delete' : 'delete'} s3://${c.bucket}/${key}`);
    });
    return { unreferenced, kept: blobs.length - unreferenced.length, foreign: keys.length - blobs.length };
  } finally {
    await agent.close();
  }
}
