// What `registrish check` can find wrong with a deployed registry: each kind of problem, the pull
// clients it breaks (from the measurements and client sources in the shared notes), and the fix
// that works on any host. Each host's own fix for a kind lives with the host (hosts/<host>.ts).

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
  | 'error-body'
  | 'api-version'
  | 'range'
  | 'htaccess-ignored'
  | 'referrers';

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
  'digest-header-missing':
    'no pull client: docker, containerd, podman/skopeo and crane pull without it (containerd and docker then GET the manifest and hash it; crane pulls with GET); crane digest falls back from HEAD to GET; the OCI distribution spec says MUST',
  'digest-header-wrong': 'containerd and docker (they trust the header to resolve the tag, then the content does not match it)',
  'head-length': 'containerd (ctr, nerdctl, kubelet) and docker: HEAD must carry the real Content-Length (containerd fails on 0: "target.Size must be greater than zero")',
  'length-wrong': `${ALL_CLIENTS} (they verify the size; crane rejects a Content-Length different from the descriptor size)`,
  'content-encoding': 'containerd (ctr, nerdctl, kubelet, Docker 29) decodes gzip/zstd/deflate, so the bytes no longer hash to the digest; any decoding proxy or client likewise',
  'body-digest': `${ALL_CLIENTS} (every client verifies the digest)`,
  'missing-200': 'all clients get a wrong answer instead of "not found" (a missing tag or blob downloads an HTML page and fails with a confusing error)',
  'missing-not-404': 'error messages only: clients report "denied"/"unauthorized" instead of "not found"',
  'error-body': 'error messages only: docker prints `error parsing HTTP 404 response body: invalid character …` instead of `manifest unknown`; podman/skopeo print the raw body',
  'api-version': 'no pull client measured (docker, containerd, podman/skopeo pull without it); the distribution spec answers /v2/ with it, and tools that tell a registry by it do not recognise the host',
  range: 'podman, skopeo, buildah, CRI-O when they resume an interrupted blob download (they send Range: bytes=N- and require 206); fresh pulls work',
  'htaccess-ignored': `${ALL_CLIENTS}: without the generated .htaccess files, manifests get Apache's default Content-Type and no Docker-Content-Digest`,
  referrers: 'cosign, oras, sigstore policy-controller and other tools that find signatures, SBOMs and attestations through the referrers API; pulls still work',
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
  'error-body': 'none (docker: confusing message)',
  'api-version': 'none measured',
  range: 'podman/skopeo/CRI-O resumed downloads',
  'htaccess-ignored': 'all clients',
  referrers: 'cosign, oras, signature policies',
};

/** The heading of each kind in the "How to fix" list. */
export const TITLES: Record<ProblemKind, string> = {
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
  'error-body': 'a missing path answers without the OCI error body',
  'api-version': '/v2/ without Docker-Distribution-API-Version',
  range: 'byte ranges not served',
  'htaccess-ignored': 'Apache ignores the generated .htaccess files',
  referrers: 'referrers answer missing or wrong',
};

/** Deploying again, unchanged, fixes most problems of files that differ from what the build wrote. */
export const REDEPLOY = 'Deploy the build output unchanged (every file under v2/ plus the host files from the same build).';

/** How to fix each kind on any host; hosts/<host>.ts refine this for their own host. */
export const GENERIC_FIXES: Record<ProblemKind, string> = {
  'base-status': 'Serve v2/index.html (the build writes it) for /v2/ with status 200; make sure no redirect or rewrite rule catches /v2/.',
  catalog: 'Deploy v2/_catalog, or run check with --images images.json.',
  'tags-list': 'Deploy v2/<name>/tags/list from the same build as the manifests (Content-Type application/json).',
  status: `${REDEPLOY} A 403 means the file is not public.`,
  'request-failed': 'Check the host is reachable from here and answers within 30 s; run check again.',
  'manifest-type': 'Serve each manifest with exactly its own mediaType as Content-Type (listed per URL in v2/.registrish-paths.json).',
  'type-params': 'Send the bare media type: whatever adds `; charset=…` (the server for "text-like" types, a proxy, a worker) must not for /v2/.',
  'manifest-invalid': `The file served is not the manifest the build wrote. ${REDEPLOY}`,
  'digest-header-missing': 'Optional for every pull client measured; send `Docker-Content-Digest: <digest>` on manifests where the host can (a Content-Type on the same response is then required by docker).',
  'digest-header-wrong': 'The header rules are from another build than the files (a tag moved): deploy the host files from the same build as v2/.',
  'head-length': "Answer HEAD like GET, with the file's Content-Length (static file serving does; a function, proxy or worker in front may not).",
  'length-wrong': `The file served is not the one the build wrote (truncated, transformed, or a Git LFS pointer). ${REDEPLOY}`,
  'content-encoding': 'Never send Content-Encoding on /v2/: the stored bytes are the content (a gzip layer is data, not an encoding).',
  'body-digest': `The bytes changed after the build (asset optimisation, line-ending conversion, Git LFS pointers, a transforming CDN). ${REDEPLOY}`,
  'missing-200': 'Missing paths under /v2/ must answer 404: remove the catch-all (SPA) fallback, or exclude /v2/ from it.',
  'missing-not-404': 'Missing paths should answer 404.',
  'error-body': 'Answer a missing path under /v2/ with 404, Content-Type application/json and `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}` (BLOB_UNKNOWN for blobs, NAME_UNKNOWN for an unknown repository): deploy the host files the build wrote for it.',
  'api-version': 'Send `Docker-Distribution-API-Version: registry/2.0` with GET /v2/ (the generated host files do).',
  range: 'Serve byte ranges (206 with Content-Range) for blobs: static file serving does; a function, worker or proxy in front may not.',
  'htaccess-ignored': 'Allow .htaccess files for the site folder: `AllowOverride FileInfo` (or All) in its <Directory> block, then reload Apache.',
  referrers: 'Deploy v2/<name>/referrers/ from the same build as the manifests, served with Content-Type application/vnd.oci.image.index.v1+json exactly (the generated host files set it).',
};

// A row is one request and what was wrong with its answer; checks add problems to it as they go.

export function newRow(section: string, label: string): CheckRow {
  return { section, label, problems: [] };
}

export function fail(row: CheckRow, kind: ProblemKind, message: string): CheckRow {
  row.problems.push({ kind, severity: 'fail', message });
  return row;
}

export function warn(row: CheckRow, kind: ProblemKind, message: string): CheckRow {
  row.problems.push({ kind, severity: 'warn', message });
  return row;
}

export function rowStatus(row: CheckRow): 'ok' | 'warn' | 'fail' {
  if (row.problems.some((p) => p.severity === 'fail')) return 'fail';
  return row.problems.length ? 'warn' : 'ok';
}
