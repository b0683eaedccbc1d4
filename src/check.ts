import { APACHE_SENTINEL, APACHE_SENTINEL_VALUE } from './apache.ts';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { parseCommandArgs, UsageError, type CliIO } from './cli.ts';
import { loadConfig } from './config.ts';
import { HttpError, RegistrishError } from './errors.ts';
import {
  DOCKER_FOREIGN_LAYER,
  MANIFEST_ACCEPT,
  isIndexType,
  isKnownManifestType,
  isManifestType,
  manifestMediaType,
  stripParams,
} from './media-types.ts';
import { isValidDigest, isValidRepositoryName, isValidTag } from './reference.ts';
import { Transport, createAgent, discard, firstHeader, type Method, type ResponseBody, type ResponseHeaders } from './transport.ts';

// `registrish check <url>`: a doctor for a deployed registry. It behaves like the strictest of the
// pull clients measured in /work/shared/notes/client-facts.md (containerd's HEAD-then-GET,
// containers/image's `/v2/` ping, crane's raw Content-Type compare) and, for every problem, says
// which clients it breaks and how to fix it on the host. Blobs are streamed through the hash,
// never buffered: layers can be gigabytes.

export const HOSTS = ['netlify', 'cloudflare', 'nginx', 's3', 'apache'] as const;
export type HostHint = (typeof HOSTS)[number];

/** What went wrong; each kind has one "breaks" text and one fix per host. */
export type ProblemKind =
  | 'base-status'
  | 'catalog'
  | 'tags-list'
  | 'status'
  | 'request-failed'
  | 'manifest-type'
  | 'type-params'
  | 'manifest-invalid'
  | 'digest-header-missing'
  | 'digest-header-wrong'
  | 'head-length'
  | 'length-wrong'
  | 'content-encoding'
  | 'body-digest'
  | 'missing-200'
  | 'missing-not-404'
  | 'range'
  | 'htaccess-ignored';

export interface Problem {
  kind: ProblemKind;
  severity: 'fail' | 'warn';
  message: string;
}

export interface CheckRow {
  /** `registry` or a repository name. */
  section: string;
  /** e.g. `GET /v2/hello/manifests/1.0`. */
  label: string;
  problems: Problem[];
}

export interface CheckOptions {
  /** Registry origin, e.g. `https://registry.example.com` (a trailing `/v2/` is allowed). */
  url: string;
  /** Names and tags to check (from images.json); discovered through `/v2/_catalog` when absent. */
  images?: Array<{ name: string; tags: string[] }>;
  /** HEAD every blob but GET (download and hash) only a sample. */
  quick?: boolean;
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** Injected dispatcher (tests); a private pool otherwise. */
  dispatcher?: Dispatcher;
  /** The host, when known: enables host-specific checks (Apache's .htaccess sentinel). */
  host?: HostHint;
}

export interface CheckReport {
  url: string;
  /** Where the tags came from. */
  source: 'images' | 'catalog';
  quick: boolean;
  rows: CheckRow[];
  checks: number;
  failed: number;
  warnings: number;
}

const ALL_CLIENTS = 'all clients: docker, containerd (ctr, nerdctl, kubelet, Docker 29), podman/skopeo/buildah/CRI-O, crane';

/** Which clients a problem breaks: from the measurements and client sources in the shared notes. */
export const BREAKS: Record<ProblemKind, string> = {
  'base-status':
    'podman, skopeo, buildah, CRI-O (containers/image requires 200 or 401 from GET /v2/) and crane; docker and containerd still pull',
  catalog: 'no pull client (only listing tools read /v2/_catalog); check cannot discover what to check — pass --images images.json',
  'tags-list': 'skopeo inspect (without --no-tags), crane ls and other listing tools; pulls by tag still work',
  status: `${ALL_CLIENTS} — the content is not there`,
  'request-failed': `${ALL_CLIENTS} — the request did not complete`,
  'manifest-type': `${ALL_CLIENTS} (skopeo/podman: "unsupported schema version"; containerd treats it as a blob; docker: "missing signature key" / "unsupported manifest media type")`,
  'type-params': 'crane / go-containerregistry (compares Content-Type raw, so an index is not recognised); the OCI spec says SHOULD carry no parameters',
  'manifest-invalid': ALL_CLIENTS,
  'digest-header-missing': 'none (containerd makes one extra GET to hash the body); the OCI distribution spec says MUST',
  'digest-header-wrong': 'containerd and docker (they trust the header to resolve the tag, then the content does not match it)',
  'head-length': 'containerd (ctr, nerdctl, kubelet) and docker: HEAD must carry the real Content-Length (containerd fails on 0: "target.Size must be greater than zero")',
  'length-wrong': `${ALL_CLIENTS} (they verify the size; crane rejects a Content-Length different from the descriptor size)`,
  'content-encoding': 'containerd (ctr, nerdctl, kubelet, Docker 29) decodes gzip/zstd/deflate, so the bytes no longer hash to the digest; any decoding proxy or client likewise',
  'body-digest': `${ALL_CLIENTS} (every client verifies the digest)`,
  'missing-200': 'all clients get a wrong answer instead of "not found" (a missing tag or blob downloads an HTML page and fails with a confusing error)',
  'missing-not-404': 'error messages only: clients report "denied"/"unauthorized" instead of "not found"',
  range: 'podman, skopeo, buildah, CRI-O when they resume an interrupted blob download (they send Range: bytes=N- and require 206); fresh pulls work',
  'htaccess-ignored': `${ALL_CLIENTS}: without the generated .htaccess files, manifests get Apache's default Content-Type and no Docker-Content-Digest`,
};

/** The same, in a few words, for the table lines. */
export const BREAKS_SHORT: Record<ProblemKind, string> = {
  'base-status': 'podman, skopeo, buildah, CRI-O, crane',
  catalog: 'no pull client',
  'tags-list': 'skopeo inspect, crane ls',
  status: 'all clients',
  'request-failed': 'all clients',
  'manifest-type': 'all clients',
  'type-params': 'crane',
  'manifest-invalid': 'all clients',
  'digest-header-missing': 'none',
  'digest-header-wrong': 'containerd, docker',
  'head-length': 'containerd, docker',
  'length-wrong': 'all clients',
  'content-encoding': 'containerd, nerdctl, kubelet, Docker 29',
  'body-digest': 'all clients',
  'missing-200': 'all clients (confusing errors)',
  'missing-not-404': 'none (error messages only)',
  range: 'podman/skopeo/CRI-O resumed downloads',
  'htaccess-ignored': 'all clients',
};

const TITLES: Record<ProblemKind, string> = {
  'base-status': 'GET /v2/ must answer 200',
  catalog: '/v2/_catalog unreadable',
  'tags-list': 'tags/list wrong or missing',
  status: 'published file missing or unreadable',
  'request-failed': 'request failed',
  'manifest-type': 'manifest served with the wrong Content-Type',
  'type-params': 'manifest Content-Type carries parameters (charset)',
  'manifest-invalid': 'manifest is not a valid manifest document',
  'digest-header-missing': 'no Docker-Content-Digest header',
  'digest-header-wrong': 'Docker-Content-Digest does not match the content',
  'head-length': 'HEAD without a usable Content-Length',
  'length-wrong': 'size differs from the published size',
  'content-encoding': 'Content-Encoding on registry content',
  'body-digest': 'bytes do not hash to their digest',
  'missing-200': 'a missing path answers 200',
  'missing-not-404': 'a missing path does not answer 404',
  range: 'byte ranges not served',
  'htaccess-ignored': 'Apache ignores the generated .htaccess files',
};

type FixTable = { generic: string } & Partial<Record<HostHint, string>>;

const REDEPLOY = 'Deploy the build output unchanged (every file under v2/ plus the host files from the same build).';

/** How to fix each kind: generic, and tailored per host when --host is given. */
export const FIXES: Record<ProblemKind, FixTable> = {
  'base-status': {
    generic: 'Serve v2/index.html (the build writes it) for /v2/ with status 200; make sure no redirect or rewrite rule catches /v2/.',
    netlify: 'Check v2/index.html was deployed and no _redirects / netlify.toml rule matches /v2/.',
    cloudflare: 'Check v2/index.html was uploaded and no _redirects rule matches /v2/.',
    nginx: 'Let /v2/ reach its index: `location /v2/ { index index.html; try_files $uri $uri/ =404; }`.',
    s3: 'S3/R2 REST endpoints serve no index documents: also upload v2/index.html under the key `v2/` (Content-Type application/json), or use the website endpoint.',
    apache: 'Make `DirectoryIndex index.html` apply to /v2/ (in the server config if AllowOverride None ignores .htaccess).',
  },
  catalog: { generic: 'Deploy v2/_catalog, or run check with --images images.json.' },
  'tags-list': {
    generic: 'Deploy v2/<name>/tags/list from the same build as the manifests (Content-Type application/json).',
  },
  status: {
    generic: `${REDEPLOY} A 403 means the file is not public.`,
    netlify: `${REDEPLOY} Netlify allows at most 54,000 files per directory.`,
    cloudflare: `${REDEPLOY} Cloudflare Pages allows 20,000 files (free plan) and 25 MiB per file.`,
    s3: `${REDEPLOY} Grant public s3:GetObject on the bucket (403 = not public, or missing without s3:ListBucket).`,
  },
  'request-failed': { generic: 'Check the host is reachable from here and answers within 30 s; run check again.' },
  'manifest-type': {
    generic: 'Serve each manifest with exactly its own mediaType as Content-Type (listed per URL in v2/.registrish-paths.json).',
    netlify:
      'Deploy the generated _headers at the publish root together with the site (it sets the type of every manifest URL). `netlify dev` overwrites Content-Type: check the deployed site, not the dev proxy.',
    cloudflare:
      'Deploy the generated _headers at the output root (Cloudflare Pages: at most 100 rules, 2,000 characters a line; every matching rule applies).',
    nginx: 'Manifests have no file extension, so `types {}` cannot help: set it per URL, e.g. `location = /v2/<name>/manifests/<ref> { default_type <mediaType>; }`.',
    s3: 'Set each manifest object\'s Content-Type at upload (`aws s3 cp --content-type <mediaType>`; existing objects: copy onto themselves with --metadata-directive REPLACE).',
    apache: '`<Location "/v2/<name>/manifests/<ref>"> ForceType <mediaType> </Location>` in the server config (.htaccess is ignored under AllowOverride None).',
  },
  'type-params': {
    generic: 'Send the bare media type: whatever adds `; charset=…` (the server for "text-like" types, a proxy, a worker) must not for /v2/.',
    netlify: 'Netlify sends the _headers value as written: look for another rule, an Edge Function or a proxy in front that adds the parameter.',
    cloudflare: 'Look for a Transform Rule, Worker or second _headers rule adding the parameter (Cloudflare joins repeated headers).',
    nginx: '`charset off;` in the /v2/ location (and keep manifest types out of `charset_types`).',
    s3: 'Re-upload the manifests with the Content-Type metadata without parameters.',
    apache: '`AddDefaultCharset Off` for /v2/.',
  },
  'manifest-invalid': { generic: `The file served is not the manifest the build wrote. ${REDEPLOY}` },
  'digest-header-missing': {
    generic: 'Send `Docker-Content-Digest: <digest>` on manifests where the host can (optional for the clients measured).',
    netlify: 'The generated _headers sets it: deploy it with the site.',
    cloudflare: 'The generated _headers sets it: deploy it with the site.',
    nginx: '`add_header Docker-Content-Digest <digest> always;` in each manifest location.',
    s3: 'S3/R2 cannot send custom response headers: nothing to do (pulls work without it).',
    apache: '`Header always set Docker-Content-Digest <digest>` in each manifest <Location>.',
  },
  'digest-header-wrong': {
    generic: 'The header rules are from another build than the files (a tag moved): deploy the host files from the same build as v2/.',
  },
  'head-length': {
    generic: 'Answer HEAD like GET, with the file\'s Content-Length (static file serving does; a function, proxy or worker in front may not).',
    netlify: 'Serve the static file: a Function or Edge Function answering this path drops Content-Length on HEAD.',
    cloudflare: 'Serve the static file: a Worker / Pages Function answering this path drops Content-Length on HEAD.',
  },
  'length-wrong': {
    generic: `The file served is not the one the build wrote (truncated, transformed, or a Git LFS pointer). ${REDEPLOY}`,
    netlify: `Turn off asset optimisation/post-processing for the site. ${REDEPLOY}`,
  },
  'content-encoding': {
    generic: 'Never send Content-Encoding on /v2/: the stored bytes are the content (a gzip layer is data, not an encoding).',
    nginx: 'For /v2/: `gzip off; gzip_static off;` and keep application/octet-stream and the manifest types out of `gzip_types`.',
    apache:
      'mod_mime_magic labels gzip blobs `x-gzip`: disable it for /v2/ (remove MimeMagicFile) and `SetEnv no-gzip 1` (mod_deflate) there.',
    s3: 'Remove the Content-Encoding metadata from the objects (upload without --content-encoding).',
    netlify: 'Remove any Content-Encoding from _headers for /v2/ and do not upload pre-compressed files under the blob names.',
    cloudflare: 'Remove any Content-Encoding from _headers / Transform Rules for /v2/.',
  },
  'body-digest': {
    generic: `The bytes changed after the build (asset optimisation, line-ending conversion, Git LFS pointers, a transforming CDN). ${REDEPLOY}`,
  },
  'missing-200': {
    generic: 'Missing paths under /v2/ must answer 404: remove the catch-all (SPA) fallback, or exclude /v2/ from it.',
    netlify: 'Remove the `/* /index.html 200` fallback from _redirects / netlify.toml, or put a `/v2/* /404.html 404` rule before it.',
    cloudflare: 'Add a top-level 404.html: without it Cloudflare Pages answers index.html with 200 for any missing path.',
    nginx: '`try_files $uri =404;` in the /v2/ location (not `/index.html`).',
    s3: 'A CDN error rule that turns 403/404 into 200 /index.html (CloudFront custom error response) must not apply to /v2/.',
    apache: 'Exclude /v2/ from `FallbackResource` / rewrite-to-index rules.',
  },
  'missing-not-404': {
    generic: 'Missing paths should answer 404.',
    s3: 'Grant s3:ListBucket to the public so S3 answers 404 instead of 403 for missing keys.',
  },
  range: {
    generic: 'Serve byte ranges (206 with Content-Range) for blobs: static file serving does; a function, worker or proxy in front may not.',
  },
  'htaccess-ignored': {
    generic: 'Allow .htaccess files for the site folder: `AllowOverride FileInfo` (or All) in its <Directory> block, then reload Apache.',
  },
};

export function fixFor(kind: ProblemKind, host?: HostHint): string {
  const table = FIXES[kind];
  return (host && table[host]) || table.generic;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024; // registries cap manifests at 4 MiB
const MISSING_TAG = 'registrish-check-missing-tag';
const MISSING_DIGEST = `sha256:${'0'.repeat(64)}`;
const JSON_ACCEPT = 'application/json';

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface ManifestFacts {
  digest: string;
  size: number;
  mediaType: string;
  children: Descriptor[];
  blobs: Descriptor[];
}

/** Runs every check; never throws for what the server does wrong (that is a row). */
export async function runCheck(options: CheckOptions): Promise<CheckReport> {
  const origin = registryOrigin(options.url);
  const concurrency = options.concurrency ?? 8;
  // As many connections as requests in flight, so a queued request's timeout does not start early.
  const agent = options.dispatcher ? undefined : createAgent({ connections: concurrency });
  // One retry only: a doctor reports a flaky host rather than hiding it behind backoff.
  const transport = new Transport({ dispatcher: options.dispatcher ?? agent, maxRetries: 1, retryBaseMs: 200 });
  const limit = semaphore(concurrency);
  const rows: CheckRow[] = [];
  const quick = options.quick ?? false;
  // tags/list rows made during discovery, placed at the top of their repository's table.
  let tagListRows: Map<string, CheckRow> | undefined;

  // Every request goes through here: bounded, and a transport error becomes a response-less result.
  // A 5xx that outlasts the retry is a status problem; anything else (refused, timeout) a failed request.
  type Got = { status: number; headers: ResponseHeaders; body: ResponseBody } | { error: string; kind: ProblemKind };
  const send = (method: Method, urlPath: string, headers: Record<string, string | undefined> = {}): Promise<Got> =>
    limit(async () => {
      try {
        const res = await transport.request(new URL(urlPath, origin), { method, headers });
        return { status: res.status, headers: res.headers, body: res.body };
      } catch (e) {
        return { error: e instanceof Error ? e.message : String(e), kind: e instanceof HttpError ? 'status' : 'request-failed' };
      }
    });

  try {
    const base = await checkBase();
    rows.push(base);
    // Unreachable host: every other check would repeat the same connection error.
    if (base.problems.some((p) => p.kind === 'request-failed')) return summarize(origin, options.images ? 'images' : 'catalog', quick, rows);
    const source: CheckReport['source'] = options.images ? 'images' : 'catalog';
    const targets = options.images?.map((i) => ({ name: i.name, tags: [...new Set(i.tags)] })) ?? (await discover());
    const firstRepo = targets[0]?.name;
    if (firstRepo) {
      rows.push(await checkMissing(`/v2/${firstRepo}/manifests/${MISSING_TAG}`, MANIFEST_ACCEPT));
      rows.push(await checkMissing(`/v2/${firstRepo}/blobs/${MISSING_DIGEST}`, undefined, `/v2/${firstRepo}/blobs/sha256:000…`));
    }
    const perRepo = await Promise.all(targets.map((t) => checkRepository(t.name, t.tags, source === 'images')));
    for (const r of perRepo) rows.push(...r);
    return summarize(origin, source, quick, rows);
  } finally {
    await agent?.close();
  }

  async function checkBase(): Promise<CheckRow> {
    const row = newRow('registry', 'GET /v2/');
    const got = await send('GET', '/v2/');
    if ('error' in got) return fail(row, got.kind === 'status' ? 'base-status' : 'request-failed', got.error);
    await discard(got.body);
    // containers/image and crane accept exactly these; 401 is a registry asking for a login.
    if (got.status !== 200 && got.status !== 401) fail(row, 'base-status', `answered ${got.status} (expected 200 or 401)`);
    // The generated .htaccess sets a sentinel header on every registry URL: without it Apache is
    // not reading them (AllowOverride None), and every manifest type below is Apache's guess.
    if (options.host === 'apache' && firstHeader(got.headers, APACHE_SENTINEL.toLowerCase()) !== APACHE_SENTINEL_VALUE) {
      fail(row, 'htaccess-ignored', `no ${APACHE_SENTINEL} header: Apache does not read the generated .htaccess files`);
    }
    return row;
  }

  async function discover(): Promise<Array<{ name: string; tags: string[] }>> {
    const row = newRow('registry', 'GET /v2/_catalog');
    rows.push(row);
    const doc = await getJson(row, '/v2/_catalog', 'catalog');
    const repos = doc && Array.isArray(doc.repositories) ? doc.repositories.filter(isValidRepositoryName) : undefined;
    if (doc && !repos) fail(row, 'catalog', 'no "repositories" list in the answer');
    if (repos && repos.length === 0) fail(row, 'catalog', 'the catalog lists no repositories');
    const found = await Promise.all(
      (repos ?? []).map(async (name) => {
        const listRow = newRow(name, `GET /v2/${name}/tags/list`);
        const list = await getJson(listRow, `/v2/${name}/tags/list`, 'tags-list');
        const tags = list && Array.isArray(list.tags) ? list.tags.filter(isValidTag) : [];
        if (list && tags.length === 0) fail(listRow, 'tags-list', 'no tags listed');
        return { name, tags, listRow };
      }),
    );
    tagListRows = new Map(found.map((f) => [f.name, f.listRow]));
    return found.map(({ name, tags }) => ({ name, tags }));
  }

  async function checkTagsList(name: string, tags: string[]): Promise<CheckRow> {
    const row = newRow(name, `GET /v2/${name}/tags/list`);
    const list = await getJson(row, `/v2/${name}/tags/list`, 'tags-list');
    if (!list) return row;
    const listed = new Set(Array.isArray(list.tags) ? list.tags : []);
    const absent = tags.filter((t) => !listed.has(t));
    if (absent.length) fail(row, 'tags-list', `does not list ${absent.map((t) => `"${t}"`).join(', ')}`);
    return row;
  }

  async function getJson(row: CheckRow, urlPath: string, kind: ProblemKind): Promise<Record<string, unknown> | undefined> {
    const got = await send('GET', urlPath, { accept: JSON_ACCEPT });
    if ('error' in got) return void fail(row, kind, got.error);
    const text = await readText(got.body, 1024 * 1024);
    if (got.status !== 200) return void fail(row, kind, `answered ${got.status} (expected 200)`);
    try {
      const doc = JSON.parse(text) as unknown;
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) return doc as Record<string, unknown>;
    } catch {
      // reported below
    }
    fail(row, kind, `the answer is not a JSON object${looksLikeHtml(text) ? ' (an HTML page)' : ''}`);
    return undefined;
  }

  async function checkMissing(urlPath: string, accept?: string, shown = urlPath): Promise<CheckRow> {
    const row = newRow('registry', `GET ${shown} (missing on purpose)`);
    const got = await send('GET', urlPath, { accept });
    if ('error' in got) return fail(row, got.kind, got.error);
    const head = await readText(got.body, 4096);
    if (got.status === 404) return row;
    if (got.status >= 200 && got.status < 300) {
      return fail(row, 'missing-200', `answered ${got.status}${looksLikeHtml(head) ? ' with an HTML page' : ''} instead of 404`);
    }
    return warn(row, 'missing-not-404', `answered ${got.status} instead of 404`);
  }

  async function checkRepository(name: string, tags: string[], fromImages: boolean): Promise<CheckRow[]> {
    const out: CheckRow[] = [];
    const listRow = fromImages ? await checkTagsList(name, tags) : tagListRows?.get(name);
    if (listRow) out.push(listRow);

    // By tag, as every client starts; each tag's digest comes from its body.
    const byTag = await Promise.all(tags.map((tag) => checkManifestRef(name, tag, undefined)));
    for (const r of byTag) out.push(...r.rows);

    // Then by digest, level by level (index → its children), each digest once, in a stable order.
    const seen = new Set<string>();
    const blobs = new Map<string, Descriptor>();
    let level: Descriptor[] = byTag.flatMap((r) => (r.facts ? [{ digest: r.facts.digest, size: r.facts.size, mediaType: r.facts.mediaType }] : []));
    for (let depth = 0; level.length > 0 && depth < 4; depth++) {
      const unique = level.filter((d) => !seen.has(d.digest) && (seen.add(d.digest), true));
      const results = await Promise.all(unique.map((d) => checkManifestRef(name, d.digest, d)));
      level = [];
      for (const r of results) {
        out.push(...r.rows);
        if (!r.facts) continue;
        level.push(...r.facts.children);
        for (const b of r.facts.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
      }
    }

    const all = [...blobs.values()];
    const sample = quick ? quickSample(all) : new Set(all.map((b) => b.digest));
    const blobRows = await Promise.all(all.map((b) => checkBlob(name, b, sample.has(b.digest))));
    for (const r of blobRows) out.push(...r);
    // One resume per repository is enough to tell whether the host serves ranges.
    const ranged = all.find((b) => sample.has(b.digest) && b.size >= 2);
    if (ranged) out.push(await checkRange(name, ranged));
    return out;
  }

  /**
   * HEAD and GET one manifest. `ref` is a tag (descriptor undefined) or a digest (descriptor from
   * the parent, or from the tag's answer): by digest the type, size and hash are held to it.
   */
  async function checkManifestRef(
    name: string,
    ref: string,
    desc: Descriptor | undefined,
  ): Promise<{ rows: CheckRow[]; facts?: ManifestFacts }> {
    const urlPath = `/v2/${name}/manifests/${ref}`;
    const label = desc ? `${name}@${shortDigest(ref)}${platformText(desc)}` : `${name}:${ref}`;
    const headRow = newRow(name, `HEAD ${label}`);
    const getRow = newRow(name, `GET  ${label}`);
    const rows = [headRow, getRow];

    // GET first (the HEAD's checks need the real size and type), shown after the HEAD.
    const got = await send('GET', urlPath, { accept: MANIFEST_ACCEPT });
    let facts: ManifestFacts | undefined;
    if ('error' in got) fail(getRow, got.kind, got.error);
    else if (got.status !== 200) {
      const text = await readText(got.body, 4096);
      fail(getRow, 'status', `answered ${got.status}${looksLikeHtml(text) ? ' (an HTML page)' : ''} (expected 200)`);
    } else {
      facts = await inspectManifestGet(getRow, got, desc);
    }

    const headers = await headAnswer(headRow, await send('HEAD', urlPath, { accept: MANIFEST_ACCEPT }));
    if (headers) {
      const len = firstHeader(headers, 'content-length');
      if (len === undefined) fail(headRow, 'head-length', 'no Content-Length');
      else if (Number(len) === 0) fail(headRow, 'head-length', 'Content-Length is 0');
      else if (facts && Number(len) !== facts.size) fail(headRow, 'length-wrong', `Content-Length ${len}, the manifest is ${facts.size} bytes`);
      if (facts) {
        checkManifestType(headRow, headers, facts.mediaType);
        checkDigestHeader(headRow, headers, facts.digest);
      }
    }
    return { rows, facts };
  }

  /** The headers of a HEAD that answered 200 with an acceptable encoding, or undefined once `row` has failed. */
  async function headAnswer(row: CheckRow, head: Got): Promise<ResponseHeaders | undefined> {
    if ('error' in head) return void fail(row, head.kind, head.error);
    await discard(head.body);
    if (head.status !== 200) return void fail(row, 'status', `answered ${head.status} (expected 200)`);
    checkEncoding(row, head.headers);
    return head.headers;
  }

  async function inspectManifestGet(
    row: CheckRow,
    got: { headers: ResponseHeaders; body: ResponseBody },
    desc: Descriptor | undefined,
  ): Promise<ManifestFacts | undefined> {
    checkEncoding(row, got.headers);
    const algorithm = desc ? desc.digest.split(':', 1)[0]! : 'sha256';
    let bytes: Buffer;
    try {
      bytes = await readAll(got.body, MAX_MANIFEST_BYTES);
    } catch (e) {
      return void fail(row, 'request-failed', e instanceof Error ? e.message : String(e));
    }
    const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    const len = firstHeader(got.headers, 'content-length');
    if (len !== undefined && Number(len) !== bytes.length) fail(row, 'length-wrong', `Content-Length ${len}, body ${bytes.length} bytes`);
    if (desc) {
      if (digest !== desc.digest) fail(row, 'body-digest', `body hashes to ${shortDigest(digest)}, not ${shortDigest(desc.digest)}`);
      if (bytes.length !== desc.size) fail(row, 'length-wrong', `body is ${bytes.length} bytes, the descriptor says ${desc.size}`);
    }
    let mediaType: string;
    let doc: Record<string, unknown>;
    try {
      mediaType = manifestMediaType(bytes, desc?.mediaType);
      doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      const what = looksLikeHtml(bytes.subarray(0, 512).toString('utf8')) ? 'an HTML page' : e instanceof Error ? e.message : String(e);
      return void fail(row, 'manifest-invalid', what);
    }
    checkManifestType(row, got.headers, mediaType);
    checkDigestHeader(row, got.headers, desc?.digest ?? digest);
    const children = isIndexType(mediaType) ? descriptors(doc.manifests).filter((d) => isKnownManifestType(d.mediaType)) : [];
    const blobs = isManifestType(mediaType)
      ? [...descriptors([doc.config]), ...descriptors(doc.layers)].filter((d) => d.mediaType !== DOCKER_FOREIGN_LAYER)
      : [];
    return { digest: desc?.digest ?? digest, size: bytes.length, mediaType, children, blobs };
  }

  async function checkBlob(name: string, desc: Descriptor, download: boolean): Promise<CheckRow[]> {
    const urlPath = `/v2/${name}/blobs/${desc.digest}`;
    const label = `blob ${shortDigest(desc.digest)} (${formatSize(desc.size)})`;
    const headRow = newRow(name, `HEAD ${label}`);
    const rows = [headRow];
    const headers = await headAnswer(headRow, await send('HEAD', urlPath));
    if (headers) {
      const len = firstHeader(headers, 'content-length');
      if (len === undefined) fail(headRow, 'head-length', 'no Content-Length');
      else if (Number(len) !== desc.size) fail(headRow, len === '0' ? 'head-length' : 'length-wrong', `Content-Length ${len}, the blob is ${desc.size} bytes`);
      checkBlobDigestHeader(headRow, headers, desc.digest);
    }
    if (!download) return rows;

    const getRow = newRow(name, `GET  ${label}`);
    rows.push(getRow);
    const got = await send('GET', urlPath);
    if ('error' in got) return fail(getRow, got.kind, got.error), rows;
    if (got.status !== 200) {
      await discard(got.body);
      fail(getRow, 'status', `answered ${got.status} (expected 200)`);
      return rows;
    }
    checkEncoding(getRow, got.headers);
    checkBlobDigestHeader(getRow, got.headers, desc.digest);
    const len = firstHeader(got.headers, 'content-length');
    if (len !== undefined && Number(len) !== desc.size) fail(getRow, 'length-wrong', `Content-Length ${len}, the blob is ${desc.size} bytes`);
    // Streamed through the hash: a layer can be gigabytes.
    const algorithm = desc.digest.split(':', 1)[0]!;
    const hash = createHash(algorithm);
    let size = 0;
    try {
      for await (const chunk of got.body) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (e) {
      return fail(getRow, 'request-failed', `reading the body: ${e instanceof Error ? e.message : String(e)}`), rows;
    }
    const digest = `${algorithm}:${hash.digest('hex')}`;
    if (size !== desc.size) fail(getRow, 'length-wrong', `received ${size} bytes, the blob is ${desc.size}`);
    if (digest !== desc.digest) fail(getRow, 'body-digest', `bytes hash to ${shortDigest(digest)}`);
    return rows;
  }

  /** A resumed download, as containers/image sends it: `Range: bytes=1-` must answer 206 with the rest. */
  async function checkRange(name: string, desc: Descriptor): Promise<CheckRow> {
    const row = newRow(name, `GET  blob ${shortDigest(desc.digest)} with Range: bytes=1-`);
    const got = await send('GET', `/v2/${name}/blobs/${desc.digest}`, { range: 'bytes=1-' });
    if ('error' in got) return warn(row, 'range', got.error);
    if (got.status !== 206) {
      await discard(got.body);
      return warn(row, 'range', `answered ${got.status} (expected 206)`);
    }
    checkEncoding(row, got.headers);
    const expected = `bytes 1-${desc.size - 1}/${desc.size}`;
    const contentRange = firstHeader(got.headers, 'content-range');
    if (contentRange !== expected) warn(row, 'range', `Content-Range ${contentRange === undefined ? 'missing' : `"${contentRange}"`} (expected "${expected}")`);
    let size = 0;
    try {
      for await (const chunk of got.body) size += (chunk as Buffer).length;
    } catch (e) {
      return warn(row, 'range', `reading the body: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (size !== desc.size - 1) warn(row, 'range', `received ${size} bytes (expected ${desc.size - 1})`);
    return row;
  }
}

function checkEncoding(row: CheckRow, headers: ResponseHeaders): void {
  const enc = firstHeader(headers, 'content-encoding');
  if (enc !== undefined && enc.trim().toLowerCase() !== 'identity' && enc.trim() !== '') {
    fail(row, 'content-encoding', `Content-Encoding: ${enc} although we asked for identity`);
  }
}

function checkManifestType(row: CheckRow, headers: ResponseHeaders, mediaType: string): void {
  const raw = firstHeader(headers, 'content-type');
  if (raw === mediaType) return;
  // Exact but for parameters: containers/image, containerd and docker strip them; crane does not.
  if (stripParams(raw) === mediaType) return void fail(row, 'type-params', `Content-Type "${raw}" has parameters; send exactly "${mediaType}"`);
  fail(row, 'manifest-type', `Content-Type ${raw === undefined ? 'missing' : `"${raw}"`}, the manifest is ${mediaType}`);
}

function checkDigestHeader(row: CheckRow, headers: ResponseHeaders, digest: string): void {
  const sent = firstHeader(headers, 'docker-content-digest');
  if (sent === undefined) warn(row, 'digest-header-missing', 'no Docker-Content-Digest');
  else if (sent.trim() !== digest) fail(row, 'digest-header-wrong', `Docker-Content-Digest ${shortDigest(sent.trim())}, the content is ${shortDigest(digest)}`);
}

/** On blobs the header is optional (S3 cannot send it), but a wrong one is still wrong. */
function checkBlobDigestHeader(row: CheckRow, headers: ResponseHeaders, digest: string): void {
  const sent = firstHeader(headers, 'docker-content-digest');
  if (sent !== undefined && sent.trim() !== digest) fail(row, 'digest-header-wrong', `Docker-Content-Digest ${shortDigest(sent.trim())}, the blob is ${shortDigest(digest)}`);
}

/** With --quick: the smallest config-like blob and the smallest layer of the repository are downloaded. */
function quickSample(blobs: Descriptor[]): Set<string> {
  const bySize = [...blobs].sort((a, b) => a.size - b.size);
  const isLayer = (d: Descriptor): boolean => /(layer|rootfs)/u.test(d.mediaType ?? '');
  const picks = [bySize.find((d) => !isLayer(d)), bySize.find(isLayer)].filter((d): d is Descriptor => d !== undefined);
  return new Set(picks.map((d) => d.digest));
}

function descriptors(value: unknown): Descriptor[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (d): d is Descriptor =>
      !!d && typeof d === 'object' && isValidDigest((d as Descriptor).digest) && Number.isSafeInteger((d as Descriptor).size),
  );
}

function newRow(section: string, label: string): CheckRow {
  return { section, label, problems: [] };
}

function fail(row: CheckRow, kind: ProblemKind, message: string): CheckRow {
  row.problems.push({ kind, severity: 'fail', message });
  return row;
}

function warn(row: CheckRow, kind: ProblemKind, message: string): CheckRow {
  row.problems.push({ kind, severity: 'warn', message });
  return row;
}

export function rowStatus(row: CheckRow): 'ok' | 'warn' | 'fail' {
  if (row.problems.some((p) => p.severity === 'fail')) return 'fail';
  return row.problems.length ? 'warn' : 'ok';
}

function summarize(url: string, source: CheckReport['source'], quick: boolean, rows: CheckRow[]): CheckReport {
  const statuses = rows.map(rowStatus);
  return {
    url,
    source,
    quick,
    rows,
    checks: rows.length,
    failed: statuses.filter((s) => s === 'fail').length,
    warnings: statuses.filter((s) => s === 'warn').length,
  };
}

/** The registry's origin: only `https://host[:port]`, optionally followed by `/v2/` (registries live at the root). */
export function registryOrigin(input: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//iu.test(input) ? input : `https://${input}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`"${input}" is not a URL (expected e.g. https://registry.example.com)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`"${input}": only http:// and https:// are supported`);
  if (url.username || url.password) throw new UsageError(`"${input}": credentials in the URL are not supported`);
  if (!['/', '/v2', '/v2/'].includes(url.pathname) || url.search) {
    throw new UsageError(`"${input}": a registry is served from the root of its host (pull clients ask for /v2/ there); give just the origin`);
  }
  return url.origin;
}

/** Human output: one table per section, then the fix for each kind of failure, then the summary. */
export function formatReport(report: CheckReport, host?: HostHint): string {
  const lines: string[] = [];
  const sections = [...new Set(report.rows.map((r) => r.section))];
  const kinds: ProblemKind[] = [];
  for (const section of sections) {
    lines.push('', section === 'registry' ? 'registry' : `image ${section}`);
    for (const row of report.rows.filter((r) => r.section === section)) {
      const status = rowStatus(row);
      lines.push(`  ${status === 'ok' ? '✓' : status === 'fail' ? '✗' : '!'} ${row.label}`);
      for (const p of row.problems) {
        if (!kinds.includes(p.kind)) kinds.push(p.kind);
        const n = kinds.indexOf(p.kind) + 1;
        lines.push(`      ${p.severity === 'fail' ? '✗' : '!'} ${p.message} — breaks: ${BREAKS_SHORT[p.kind]} [${n}]`);
      }
    }
  }
  if (kinds.length) {
    lines.push('', `How to fix${host ? ` (${host})` : ' (generic; --host netlify|cloudflare|nginx|s3|apache for host-specific advice)'}:`);
    kinds.forEach((k, i) => lines.push(`  [${i + 1}] ${TITLES[k]}`, `      breaks: ${BREAKS[k]}`, `      fix: ${fixFor(k, host)}`));
  }
  const verdict = report.failed ? 'FAIL' : 'OK';
  lines.push(
    '',
    `${verdict}: ${report.checks} check${report.checks === 1 ? '' : 's'}, ${report.failed} failed, ${report.warnings} with warnings${report.quick ? ' (--quick: every blob HEAD, a sample downloaded)' : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

export const CHECK_USAGE = `Usage: registrish check <url> [--images images.json] [--quick] [--host <host>] [--json]

Checks a deployed registry the way the strictest pull clients read it: GET /v2/; every tag's
manifest by tag and by digest (HEAD and GET: status, exact Content-Type, Content-Length,
Docker-Content-Digest, body digest), the child manifests of every index, every blob (no
Content-Encoding, bytes hash to the digest), and that missing paths answer 404. Each failure
names the clients it breaks and how to fix it. Exit code 1 when anything fails.

Options:
      --images <file>   check the names and tags of this images.json (default: discover them
                        through /v2/_catalog and tags/list)
      --quick           HEAD every blob but download only a sample (smallest config and layer)
      --host <host>     tailor the fixes: ${HOSTS.join(', ')}
      --concurrency <n> requests in flight (default 8)
      --json            machine-readable report on stdout
  -h, --help            show this help`;

export async function checkCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(argv, {
    images: { type: 'string' },
    quick: { type: 'boolean' },
    host: { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(`${CHECK_USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one URL, got ${positionals.length}` : 'missing the registry URL');
  const url = registryOrigin(positionals[0]!);
  const host = values.host;
  if (host !== undefined && !(HOSTS as readonly string[]).includes(host)) throw new UsageError(`--host must be one of ${HOSTS.join(', ')}, got "${host}"`);
  const concurrencyText = values.concurrency ?? '8';
  if (!/^\d+$/u.test(concurrencyText) || Number(concurrencyText) < 1 || Number(concurrencyText) > 64) {
    throw new UsageError(`--concurrency must be 1–64, got "${concurrencyText}"`);
  }

  let images: CheckOptions['images'];
  if (values.images !== undefined) {
    const config = await loadConfig(values.images);
    // Several entries may publish to one name (mirrored tags): merge their tags.
    const byName = new Map<string, string[]>();
    for (const spec of config.images) byName.set(spec.name, [...(byName.get(spec.name) ?? []), ...spec.tags]);
    images = [...byName].map(([name, tags]) => ({ name, tags: [...new Set(tags)] }));
  }

  const report = await runCheck({ url, images, quick: values.quick ?? false, concurrency: Number(concurrencyText), host: host as HostHint | undefined });
  if (values.json) {
    const rows = report.rows.map((r) => ({
      ...r,
      status: rowStatus(r),
      problems: r.problems.map((p) => ({ ...p, breaks: BREAKS[p.kind], fix: fixFor(p.kind, host as HostHint | undefined) })),
    }));
    io.stdout(`${JSON.stringify({ ...report, rows }, null, 2)}\n`);
  } else {
    const rel = path.relative(process.cwd(), path.resolve(values.images ?? ''));
    const from =
      report.source === 'images'
        ? `tags from ${rel && !rel.startsWith('..') ? rel : path.resolve(values.images!)}`
        : 'tags discovered through /v2/_catalog and tags/list (pass --images images.json to check exactly what you publish)';
    io.stdout(`registrish check ${url}\n${from}\n${formatReport(report, host as HostHint | undefined)}`);
  }
  return report.failed ? 1 : 0;
}

/** A bounded gate: at most `n` functions running at once. */
function semaphore(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

async function readAll(body: ResponseBody, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new RegistrishError(`body larger than ${formatSize(limit)}`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The first `limit` bytes as text (enough to tell an HTML page); the rest is dropped. */
async function readText(body: ResponseBody, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= limit) {
        body.destroy();
        break;
      }
    }
  } catch {
    // a broken body: what we have is enough for a message
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function looksLikeHtml(text: string): boolean {
  return /^\s*(<!doctype html|<html|<head|<body)/iu.test(text);
}

function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(':', 2);
  return hex && hex.length > 12 ? `${alg}:${hex.slice(0, 12)}…` : digest;
}

function platformText(desc: Descriptor): string {
  const p = desc.platform;
  if (!p?.os || !p.architecture) return '';
  return ` (${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''})`;
}

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
