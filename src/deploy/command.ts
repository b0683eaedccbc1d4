import { intOption, parseCommandArgs, UsageError, type CliIO } from '../cli/args.ts';
import { RegistrishError } from '../util/errors.ts';
import { formatBytes } from '../util/format.ts';
import { redact } from '../util/redact.ts';
import { stat } from 'node:fs/promises';
import { digestPath } from '../model/digest.ts';
import { readPathsFile } from '../publish/paths-file.ts';
import { Progress, progressTty } from '../util/progress.ts';
import { pruneBlobs, storeConnectionFromEnv, uploadBlobs, type BlobFile } from './blob-upload.ts';
import { badSegment, deploy, type DeployTarget } from './deploy.ts';
import type { S3Credentials } from './s3-client.ts';

// `registrish deploy s3://bucket[/prefix] [dir]`: options and environment in, summary out.
// The upload itself is deploy.ts.

export const DEPLOY_USAGE = `Usage: registrish deploy s3://bucket[/prefix] [dir] [options]
       registrish deploy --blobs s3://bucket[/prefix] [dir] [--cache-dir .cache/registrish]

Uploads the registry a build wrote to dir (default: _site) to an S3-compatible object store
(AWS S3, Cloudflare R2, Scaleway, MinIO, …), with each object's exact Content-Type and
Cache-Control. Objects already there with the same digest and headers are skipped, known from
one listing and the record the last deploy left in <prefix>/v2/.registrish-deploy.json (a HEAD
only where they cannot tell); nothing is deleted unless --delete is given. The last line counts
the requests sent, by type. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_SESSION_TOKEN; region: --region, AWS_REGION or AWS_DEFAULT_REGION (default us-east-1);
endpoint: --endpoint-url or AWS_ENDPOINT_URL (default AWS).

Options:
      --endpoint-url <url>  S3 API endpoint, e.g. https://<account>.r2.cloudflarestorage.com
      --region <r>          signing region (R2: auto)
      --path-style          address the bucket as <endpoint>/<bucket>/ (MinIO-like stores;
                            the default for IP and localhost endpoints)
      --acl <acl>           canned ACL for every object, e.g. public-read (stores using ACLs)
      --delete              remove objects under <prefix>/v2/ that this build no longer publishes
      --dry-run             say what would be uploaded and deleted, change nothing
      --concurrency <n>     uploads at a time (default 8; with --blobs 4)
      --blobs s3://bucket[/prefix]
                            upload the blobs of a site built with the \`blobs\` option (which holds
                            none) to the store, from the build's cache: one object per digest,
                            <prefix>/blobs/<digest>, skipping what one listing shows is there;
                            never deletes. Run it before deploying the site (the site target
                            is left out: a bucket cannot answer blob URLs with redirects).
      --cache-dir <dir>     the build's cache, where --blobs reads them (default .cache/registrish)
      --prune-unreferenced  with --blobs: list the blobs in the store that no manifest of the
                            site in dir names (uploads nothing); add --yes to delete them. Only
                            for a store this one site uses, after the site is deployed.
  -h, --help                show this help`;

export function parseS3Url(text: string): DeployTarget {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/u.exec(text);
  if (!m) throw new UsageError(`target must look like s3://bucket[/prefix], got "${text}"`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/u.test(bucket)) throw new UsageError(`"${bucket}" is not a valid bucket name`);
  const raw = m[2] ?? '';
  const prefix = raw.replace(/\/+$/u, '');
  if (prefix && badSegment(prefix)) {
    throw new UsageError(`the prefix in "${text}" must not have empty, "." or ".." segments (nor their percent-encoded forms)`);
  }
  return { bucket, prefix: prefix ? `${prefix}/` : '' };
}

function isIpOrLocal(host: string): boolean {
  return host === 'localhost' || /^\d+\.\d+\.\d+\.\d+$/u.test(host) || host.startsWith('[');
}

/** The CLI entry: options and environment in, summary out. */
export async function deployCommand(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommandArgs(argv, {
    'endpoint-url': { type: 'string' },
    region: { type: 'string' },
    'path-style': { type: 'boolean' },
    acl: { type: 'string' },
    delete: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    concurrency: { type: 'string' },
    blobs: { type: 'string' },
    'cache-dir': { type: 'string' },
    'prune-unreferenced': { type: 'boolean' },
    yes: { type: 'boolean' },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(`${DEPLOY_USAGE}\n`);
    return 0;
  }
  if (values.blobs !== undefined) {
    // A site built with `blobs` answers blob URLs with redirects, which an S3 bucket cannot do per URL.
    if (positionals[0]?.startsWith('s3://')) {
      throw new UsageError('--blobs uploads the blobs only: deploy the site (which redirects blob URLs) to a host that answers redirects (nginx, Apache)');
    }
    if (positionals.length > 1) throw new UsageError(`expected one directory with --blobs, got: ${positionals.join(' ')}`);
    const concurrency = intOption('--concurrency', values.concurrency ?? '4', 1, 64);
    const options = { cacheDir: values['cache-dir'] ?? '.cache/registrish', endpoint: values['endpoint-url'], dryRun: values['dry-run'] === true, concurrency };
    if (values['prune-unreferenced']) {
      await pruneCommand(values.blobs, positionals[0] ?? '_site', { ...options, dryRun: values.yes !== true }, io, env);
      return 0;
    }
    await deployBlobs(values.blobs, positionals[0] ?? '_site', options, io, env);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('missing target s3://bucket[/prefix]');
  if (positionals.length > 2) throw new UsageError(`expected a target and a directory, got: ${positionals.join(' ')}`);
  const target = parseS3Url(positionals[0]!);
  const dir = positionals[1] ?? '_site';
  const concurrency = intOption('--concurrency', values.concurrency ?? '8', 1, 64);
  const region = values.region || env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || 'us-east-1';
  const endpointText = values['endpoint-url'] || env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || `https://s3.${region}.amazonaws.com`;
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    throw new UsageError(`--endpoint-url must be a URL, got "${redact(endpointText)}"`);
  }
  if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new UsageError('--endpoint-url must be http(s)://');
  if (endpoint.username || endpoint.password) throw new UsageError('--endpoint-url must not carry credentials; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if (!accessKeyId || !secretAccessKey) {
    throw new RegistrishError('no S3 credentials', { hint: 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials).' });
  }
  const credentials: S3Credentials = { accessKeyId, secretAccessKey, sessionToken: env['AWS_SESSION_TOKEN'] || undefined };
  // Dotted bucket names break TLS on virtual-hosted URLs; IPs and localhost have no bucket subdomains.
  const pathStyle = values['path-style'] === true || isIpOrLocal(endpoint.hostname) || target.bucket.includes('.');
  const summary = await deploy({
    dir,
    target,
    endpoint,
    region,
    credentials,
    pathStyle,
    acl: values.acl,
    delete: values.delete === true,
    dryRun: values['dry-run'] === true,
    concurrency,
    log: (line) => io.stdout(`${redact(line)}\n`),
  });
  const mib = (summary.bytes / 1024 / 1024).toFixed(1);
  const what = values['dry-run'] ? 'dry run: would upload' : 'uploaded';
  const r = summary.requests;
  io.stdout(
    `registrish: ${what} ${summary.uploaded.length} objects (${mib} MiB), ${summary.skipped} already up to date` +
      `${values.delete ? `, ${values['dry-run'] ? 'would delete' : 'deleted'} ${summary.deleted.length}` : ''} — s3://${target.bucket}/${target.prefix}` +
      ` — requests: ${r.list} list, ${r.head} head, ${r.get} get, ${r.put} put, ${r.delete} delete, ${r.multipart} multipart;` +
      ` ${formatBytes(summary.sentBytes)} sent, ${formatBytes(summary.receivedBytes)} received\n`,
  );
  return 0;
}

/** `--blobs s3://bucket[/prefix]`: the blobs a site built with the `blobs` option names, from the cache to the store. */
async function deployBlobs(
  targetText: string,
  dir: string,
  o: { cacheDir: string; endpoint?: string; dryRun: boolean; concurrency: number },
  io: CliIO,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const target = parseS3Url(targetText);
  const paths = (await readPathsFile(dir)).filter((p) => p.kind === 'blob');
  const located = paths.filter((p) => p.location !== undefined);
  if (located.length === 0) {
    throw new RegistrishError(`${dir} holds its blobs itself: it was not built with the \`blobs\` option`, {
      hint: 'Add blobs: { url: "https://<public address of the store>/" } to the plugin options and build again, or deploy the site as it is (without --blobs).',
    });
  }
  const blobs: BlobFile[] = [];
  for (const p of new Map(located.map((x) => [x.digest!, x])).values()) {
    const file = digestPath(o.cacheDir, p.digest!);
    const st = await stat(file).catch(() => undefined);
    if (!st || st.size !== p.size) {
      throw new RegistrishError(`blob ${p.digest} (${p.urlPath}) is not in the cache ${o.cacheDir}`, {
        hint: 'Run this where the site was built, with --cache-dir pointing at its cache (the plugin option cacheDir, default .cache/registrish), or build again.',
      });
    }
    blobs.push({ digest: p.digest!, size: p.size, file });
  }
  const connection = storeConnectionFromEnv(target, o.endpoint, env, '--blobs');
  const progress = new Progress({ verb: 'uploading', tty: progressTty(env), log: (l) => io.stdout(`${redact(l)}\n`) });
  let r;
  try {
    r = await uploadBlobs({ connection, blobs, concurrency: o.concurrency, dryRun: o.dryRun, log: (l) => io.stdout(`${redact(l)}\n`), progress });
  } finally {
    progress.stop();
  }
  const rq = r.requests;
  io.stdout(
    `registrish: ${o.dryRun ? 'dry run: would upload' : 'uploaded'} ${r.uploaded} blobs (${formatBytes(r.bytes)}), ${r.present} already in s3://${target.bucket}/${target.prefix}blobs/` +
      ` — requests: ${rq.list} list, ${rq.head} head, ${rq.put} put, ${rq.multipart} multipart\n`,
  );
}

/** `--blobs s3://… --prune-unreferenced [--yes]`: what the site no longer names, listed first, deleted only when asked. */
async function pruneCommand(targetText: string, dir: string, o: { endpoint?: string; dryRun: boolean; concurrency: number }, io: CliIO, env: NodeJS.ProcessEnv): Promise<void> {
  const target = parseS3Url(targetText);
  const paths = (await readPathsFile(dir)).filter((p) => p.kind === 'blob');
  if (!paths.some((p) => p.location !== undefined)) {
    throw new RegistrishError(`${dir} was not built with the \`blobs\` option: it names no blob in a store, so every blob there would look unreferenced`, {
      hint: 'Point at the output folder of the build that uses this store.',
    });
  }
  const referenced = new Set(paths.map((p) => p.digest!));
  const connection = storeConnectionFromEnv(target, o.endpoint, env, '--blobs');
  const r = await pruneBlobs({ connection, referenced, dryRun: o.dryRun, concurrency: o.concurrency, log: (l) => io.stdout(`${redact(l)}\n`) });
  io.stdout(
    `registrish: ${o.dryRun ? 'dry run: would delete' : 'deleted'} ${r.unreferenced.length} unreferenced blobs, kept ${r.kept} that ${dir} names` +
      `${r.foreign ? `, left ${r.foreign} other objects alone` : ''} — s3://${target.bucket}/${target.prefix}blobs/` +
      `${o.dryRun && r.unreferenced.length ? ' (add --yes to delete them)' : ''}\n`,
  );
}
