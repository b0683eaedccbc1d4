import path from 'node:path';
import { RegistrishError } from '../util/errors.ts';
import { headersFor } from '../publish/headers.ts';
import type { Host, HostCheck, HostFile } from './host.ts';
import { compareStrings } from '../util/format.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { ERROR_CONTENT_TYPE, notFoundBody, publishedRepositories } from '../publish/not-found.ts';
import { DIGEST_PATTERN } from '../model/digest.ts';
import { blobRedirect, onSite, repositoryAlternation, type BlobRedirect } from '../publish/blob-store.ts';

// nginx writer: an http-context include (maps + a `server` block), a complete standalone config,
// and a docker-compose.yml running stock nginx on port 5555 over the output folder.
//
// Why maps on $uri and not one `location =` per URL: a registry has thousands of blobs; `map`
// with exact keys is a hash lookup, and one `location /v2/` keeps every header in one place.
// `default_type` takes no variables, so the location sets `default_type ""` (nginx then sends no
// Content-Type of its own) and adds the exact type with `add_header Content-Type $map`. Each
// header of headersFor() gets one map; its `default` is the value most URLs share (e.g.
// octet-stream, nosniff), so only the exceptions are listed — still exactly headersFor(p) per URL,
// because a URL whose value differs from the default is always listed (with "" = no header:
// nginx's add_header skips empty values). When every digest URL's value is its own digest
// (Docker-Content-Digest), one regex key with a named capture replaces their list. Measured: 20,000
// blobs give a 2.6 MB config that `nginx -t` reads in under 0.1 s.
//
// Keys are both the URL and the file (`/v2/` and `/v2/index.html`): nginx's `index` redirects
// `/v2/` internally, and $uri then names the file. The same values hang off both keys.
//
// Only published URLs are served under /v2/ (`if ($registrish_content_type = "") { return 404; }`),
// so `v2/.registrish-paths.json` or a stray file never leaks. The generated files themselves sit at
// the top of the output as dotfiles (the standalone config refuses every dot-segment) plus
// docker-compose.yml, which holds no secret.

export const NGINX_SERVER_FILE = '.registrish-nginx-server.conf';
export const NGINX_STANDALONE_FILE = '.registrish-nginx.conf';
export const NGINX_COMPOSE_FILE = 'docker-compose.yml';
export const NGINX_PORT = 5555;
/** Mount point of the output folder inside the compose container. */
export const NGINX_COMPOSE_ROOT = '/srv/registry';
/** Stock image used by docker-compose.yml. */
export const NGINX_IMAGE = 'nginx:1.27-alpine';
/** Above this many files in one folder, listing and lookups get slow on common filesystems. */
export const NGINX_WARN_FILES_PER_DIR = 100_000;

const CT_VAR = '$registrish_content_type';

/** Why `s` cannot be written inside an nginx double-quoted string, or undefined. */
function nginxStringProblem(s: string, spaceOk = false): string | undefined {
  // `$` would start a variable, `\` an escape, `"` end the string; controls and `;{}` are never in
  // registry URLs or header values and would only hide mistakes. Values may hold plain spaces.
  const bad = (spaceOk ? /[\u0000-\u001f\u007f"\\$;{}]/u : /[\s\u0000-\u001f\u007f"\\$;{}]/u).exec(s);
  return bad ? `it contains ${JSON.stringify(bad[0])}` : undefined;
}

/** Why the output folder cannot be the quoted `root` of the generated server include, or undefined. */
export function nginxRootProblem(root: string): string | undefined {
  const problem = nginxStringProblem(root, true);
  return problem ? `the output folder ${JSON.stringify(root)} cannot be written as an nginx root: ${problem}` : undefined;
}

function varName(header: string): string {
  return header.toLowerCase() === 'content-type' ? CT_VAR : `$registrish_${header.toLowerCase().replace(/[^a-z0-9]/gu, '_')}`;
}

export function checkNginx(paths: readonly PublishedPath[]): HostCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const p of paths) {
    const problem = nginxStringProblem(p.urlPath) ?? nginxStringProblem(p.file);
    if (problem) errors.push(`${p.urlPath} cannot be written into an nginx map: ${problem}`);
    for (const [name, value] of headersFor(p)) {
      const vp = nginxStringProblem(value, true);
      if (vp) errors.push(`header ${name} of ${p.urlPath} cannot be written into an nginx map: ${vp}`);
    }
  }
  const perDir = new Map<string, number>();
  for (const f of new Set(paths.map((p) => p.file))) {
    const dir = path.posix.dirname(f);
    perDir.set(dir, (perDir.get(dir) ?? 0) + 1);
  }
  for (const [dir, n] of [...perDir].sort(([a], [b]) => compareStrings(a, b))) {
    if (n > NGINX_WARN_FILES_PER_DIR) warnings.push(`${dir}/ holds ${n} files; many filesystems get slow with that many entries in one folder`);
  }
  return { errors, warnings };
}

interface MapSpec {
  header: string;
  variable: string;
  defaultValue: string;
  /** Set when every digest URL's value is its own digest: one regex entry replaces their list. */
  fromUrlDigest: boolean;
  entries: Array<[key: string, value: string]>;
}

/**
 * Digest URLs (blobs and manifests by digest). nginx tries exact keys first, then this regex,
 * whose named capture becomes the value: thousands of blobs need no Docker-Content-Digest list.
 */
const DIGEST_URL_RE = /^\/v2\/.+\/(?:blobs|manifests)\/(sha256:[0-9a-f]{64})$/u;
const DIGEST_URL_NGINX = '"~^/v2/.+/(?:blobs|manifests)/(?<registrish_digest>sha256:[0-9a-f]{64})$" $registrish_digest';

/** The keys one path is reachable under in $uri: its URL, and its file when nginx's index maps it. */
function keysOf(p: PublishedPath): string[] {
  const fileKey = `/${p.file}`;
  return fileKey === p.urlPath ? [p.urlPath] : [p.urlPath, fileKey];
}

/** One map per header name; each key's value is exactly what headersFor() gives its path. */
export function nginxMaps(paths: readonly PublishedPath[]): MapSpec[] {
  const byKey = new Map<string, Map<string, string>>();
  const order: string[] = [];
  for (const p of paths) {
    const problem = nginxStringProblem(p.urlPath) ?? nginxStringProblem(p.file);
    if (problem) throw new RegistrishError(`cannot write ${p.urlPath} into an nginx map: ${problem}`);
    const headers = new Map<string, string>();
    for (const [name, value] of headersFor(p)) {
      const vp = nginxStringProblem(value, true);
      if (vp) throw new RegistrishError(`cannot write header ${name} of ${p.urlPath} into an nginx map: ${vp}`);
      if (!order.includes(name)) order.push(name);
      headers.set(name, value);
    }
    for (const key of keysOf(p)) {
      const prev = byKey.get(key);
      if (prev && JSON.stringify([...prev]) !== JSON.stringify([...headers])) {
        throw new RegistrishError(`${key} is published twice with different headers`, {
          hint: 'Two images.json entries publish the same repository and tag; give them different names or tags.',
        });
      }
      byKey.set(key, headers);
    }
  }
  const keys = [...byKey.keys()].sort(compareStrings);
  if (!order.includes('Content-Type')) order.unshift('Content-Type');
  return order.map((header) => {
    const value = (k: string): string => byKey.get(k)!.get(header) ?? '';
    let defaultValue = '';
    if (header !== 'Content-Type') {
      // The most common value becomes the default: only exceptions are listed.
      const counts = new Map<string, number>();
      for (const k of keys) counts.set(value(k), (counts.get(value(k)) ?? 0) + 1);
      defaultValue = [...counts].sort((a, b) => b[1] - a[1] || compareStrings(a[0], b[0]))[0]?.[0] ?? '';
    }
    // Content-Type keeps "" as default: it doubles as "is this a published URL" for the 404 guard.
    const digestKeys = keys.filter((k) => DIGEST_URL_RE.test(k));
    const fromUrlDigest =
      header !== 'Content-Type' && digestKeys.length > 0 && digestKeys.every((k) => value(k) === DIGEST_URL_RE.exec(k)![1]);
    const entries = keys
      .filter((k) => value(k) !== defaultValue && !(fromUrlDigest && DIGEST_URL_RE.test(k)))
      .map((k): [string, string] => [k, value(k)]);
    // The regex would also answer for a digest URL whose value is the default: list those exactly.
    if (fromUrlDigest) for (const k of digestKeys) if (value(k) === defaultValue) entries.push([k, value(k)]);
    return { header, variable: varName(header), defaultValue, fromUrlDigest, entries };
  });
}

function renderHttpPart(maps: MapSpec[]): string {
  const keyCount = Math.max(1, ...maps.map((m) => m.entries.length));
  const longest = Math.max(16, ...maps.flatMap((m) => m.entries.map(([k]) => Buffer.byteLength(k))));
  // nginx needs every key to fit one bucket, and enough buckets for all keys: size both from the
  // data, with room for a few keys per bucket (else it warns "could not build optimal map_hash").
  let bucket = 128;
  while (bucket < (longest + 16) * 4) bucket *= 2;
  const maxSize = Math.max(2048, keyCount * 2);
  const lines = [
    `# Exact headers per registry URL (one map per header; keys are URL and file paths).`,
    `# If your nginx.conf already sets map_hash_*, keep the larger values and delete these two lines.`,
    `map_hash_bucket_size ${bucket};`,
    `map_hash_max_size ${maxSize};`,
  ];
  for (const m of maps) {
    lines.push('', `map $uri ${m.variable} {`, `    default "${m.defaultValue}";`);
    for (const [k, v] of m.entries) lines.push(`    "${k}" "${v}";`);
    if (m.fromUrlDigest) lines.push(`    ${DIGEST_URL_NGINX};`);
    lines.push('}');
  }
  return lines.join('\n');
}

const NOT_FOUND_VAR = '$registrish_not_found';

/**
 * Missing registry content: the OCI error body by path (publish/not-found.ts). Read only in the
 * 404 location, so its regexes cost nothing on a hit. Repository names hold `.`: written `[.]`,
 * which needs no escape inside an nginx string.
 */
export function renderNotFoundMap(paths: readonly PublishedPath[]): string {
  const repos = publishedRepositories(paths).map((r) => r.replaceAll('.', '[.]'));
  const body = (kind: 'manifest' | 'blob' | 'name'): string => `'${notFoundBody(kind).trimEnd()}'`;
  const lines = [
    '# What a missing /v2/ URL answers: 404 with the OCI error body (docker then says "manifest unknown").',
    `map $uri ${NOT_FOUND_VAR} {`,
    `    default ${body('name')};`,
  ];
  if (repos.length > 0) {
    const alt = `(?:${repos.join('|')})`;
    lines.push(`    "~^/v2/${alt}/manifests/[^/]*$" ${body('manifest')};`, `    "~^/v2/${alt}/blobs/[^/]*$" ${body('blob')};`);
  }
  lines.push('}');
  return lines.join('\n');
}

/**
 * Blobs kept in an object store: one regex location sends every blob URL of the published
 * repositories to the store with a 307 (a HEAD stays a HEAD), whatever the number of blobs.
 */
export function renderNginxBlobRedirect(redirect: BlobRedirect | undefined): string[] {
  if (!redirect) return [];
  const problem = nginxStringProblem(redirect.base);
  if (problem) throw new RegistrishError(`the blob store address ${redirect.base} cannot be written into an nginx config: ${problem}`);
  return [
    '',
    '    # Blobs live in an object store (the `blobs` option): each blob URL is sent there; 307 keeps a HEAD a HEAD.',
    `    location ~ "^/v2/${repositoryAlternation(redirect.repositories)}/blobs/(${DIGEST_PATTERN})$" {`,
    `        return 307 ${redirect.base}$1;`,
    '    }',
  ];
}

function renderServer(maps: MapSpec[], opts: { listen: string; root: string; blobRedirect?: BlobRedirect }, outside: readonly string[] = []): string {
  const adds = maps.map((m) => `        add_header ${m.header} ${m.variable};`);
  // Published URLs outside /v2/ (the Helm repository's index.yaml): the same maps, one exact location each.
  const exact = outside.flatMap((url) => ['', `    location = ${url} {`, '        types { }', '        default_type "";', ...adds, '    }']);
  return [
    'server {',
    `    listen ${opts.listen};`,
    // Quoted: a folder may hold spaces; nginxRootProblem() refused what a quoted string cannot hold.
    `    root "${opts.root}";`,
    '    server_tokens off;',
    '',
    '    location /v2/ {',
    '        # Only published URLs: anything else under /v2/ (e.g. .registrish-paths.json) is a 404,',
    '        # answered with the OCI error body.',
    '        error_page 404 @registrish_not_found;',
    `        if (${CT_VAR} = "") { return 404; }`,
    '        index index.html;',
    '        autoindex off;',
    '        # No type of nginx\'s own: the exact one comes from the map (default_type takes no variables).',
    '        types { }',
    '        default_type "";',
    '        # Clients verify digests of the bytes as stored: never compress on the fly.',
    '        gzip off;',
    '        # add_header here replaces any add_header of the enclosing server/http block.',
    ...adds,
    '    }',
    ...exact,
    '',
    '    location @registrish_not_found {',
    `        default_type ${ERROR_CONTENT_TYPE};`,
    '        add_header X-Content-Type-Options nosniff always;',
    `        return 404 ${NOT_FOUND_VAR};`,
    '    }',
    ...renderNginxBlobRedirect(opts.blobRedirect),
    '',
    '    # Dotfiles (the generated configs, .registrish-paths.json, .htaccess) are never served.',
    '    # /.well-known/ stays served (ACME webroot challenges and the like).',
    '    location ~ /\\.(?!well-known/) { return 404; }',
    '}',
  ].join('\n');
}

const outsideV2 = (paths: readonly PublishedPath[]): string[] => paths.filter((p) => !p.urlPath.startsWith('/v2/')).map((p) => p.urlPath);

export interface NginxRenderOptions {
  /** `listen` of the server block (default 5555). */
  listen?: string;
}

/** The http-context include: maps and a server block whose root is `root` (absolute). */
export function renderNginxServerInclude(paths: readonly PublishedPath[], root: string, opts: NginxRenderOptions = {}): string {
  const rootProblem = nginxRootProblem(root);
  if (rootProblem) {
    throw new RegistrishError(rootProblem, {
      hint: 'Build into a folder whose path has no quote, backslash, $, ;, braces or control characters.',
    });
  }
  const maps = nginxMaps(onSite(paths));
  return [
    '# Generated by registrish: a read-only container registry served by nginx.',
    '# Include it inside the http { } block of your nginx.conf (e.g. copy it to /etc/nginx/conf.d/registrish.conf).',
    '# root is the output folder as built; change it if you deploy the folder elsewhere.',
    '# Files must be readable by the nginx worker user (chmod -R a+rX on the folder if your umask is strict).',
    '',
    renderHttpPart(maps),
    '',
    renderNotFoundMap(paths),
    '',
    renderServer(maps, { listen: opts.listen ?? String(NGINX_PORT), root, blobRedirect: blobRedirect(paths) }, outsideV2(paths)),
    '',
  ].join('\n');
}

/** A complete nginx.conf; the document root is nginx's prefix (`-p <output folder>`). */
export function renderNginxStandalone(paths: readonly PublishedPath[], opts: NginxRenderOptions = {}): string {
  const maps = nginxMaps(onSite(paths));
  const indent = (text: string): string => text.split('\n').map((l) => (l ? `    ${l}` : l)).join('\n');
  return [
    '# Generated by registrish: a complete nginx configuration serving this folder as a registry.',
    `#   nginx -p /path/to/this/folder/ -c /path/to/this/folder/${NGINX_STANDALONE_FILE} -e stderr -g 'daemon off;'`,
    '# The document root is the prefix given with -p, so the folder can be moved or deployed as is.',
    '# No pid directive: pass `-g "pid /some/file;"` when not running as root.',
    '',
    'worker_processes auto;',
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    '',
    'http {',
    '    # Types for the rest of the site (Debian and the official image both ship this file);',
    '    # the /v2/ location replaces them with the exact registry types.',
    '    include /etc/nginx/mime.types;',
    '    default_type application/octet-stream;',
    '    access_log /dev/stdout;',
    '    sendfile on;',
    '    tcp_nopush on;',
    '    server_tokens off;',
    '',
    indent(renderHttpPart(maps)),
    '',
    indent(renderNotFoundMap(paths)),
    '',
    // A relative root is resolved against the prefix (-p).
    indent(renderServer(maps, { listen: opts.listen ?? String(NGINX_PORT), root: '.', blobRedirect: blobRedirect(paths) }, outsideV2(paths))),
    '}',
    '',
  ].join('\n');
}

export function renderNginxCompose(): string {
  return [
    `# Generated by registrish: serves this folder as a read-only registry with stock nginx on port ${NGINX_PORT}.`,
    '#   docker compose up -d',
    `#   docker pull localhost:${NGINX_PORT}/<name>:<tag>     (put TLS in front for anything but localhost)`,
    'services:',
    '  registry:',
    `    image: ${NGINX_IMAGE}`,
    `    command: ["nginx", "-p", "${NGINX_COMPOSE_ROOT}/", "-c", "${NGINX_COMPOSE_ROOT}/${NGINX_STANDALONE_FILE}", "-e", "stderr", "-g", "daemon off;"]`,
    '    volumes:',
    `      - ./:${NGINX_COMPOSE_ROOT}:ro`,
    '    ports:',
    `      - "${NGINX_PORT}:${NGINX_PORT}"`,
    '    restart: unless-stopped',
    '',
  ].join('\n');
}

export async function renderNginx(outDir: string, paths: PublishedPath[]): Promise<{ files: HostFile[]; warnings: string[] }> {
  return {
    files: [
      { file: NGINX_SERVER_FILE, text: renderNginxServerInclude(paths, path.resolve(outDir)) },
      { file: NGINX_STANDALONE_FILE, text: renderNginxStandalone(paths) },
      { file: NGINX_COMPOSE_FILE, text: renderNginxCompose() },
    ],
    warnings: [],
  };
}

export const nginx: Host = {
  name: 'nginx',
  writer: { check: checkNginx, render: renderNginx, blobRedirects: true },
  fixes: {
    'base-status': 'Let /v2/ reach its index: `location /v2/ { index index.html; try_files $uri $uri/ =404; }`.',
    'manifest-type': 'Manifests have no file extension, so `types {}` cannot help: set it per URL, e.g. `location = /v2/<name>/manifests/<ref> { default_type <mediaType>; }`.',
    'type-params': '`charset off;` in the /v2/ location (and keep manifest types out of `charset_types`).',
    'digest-header-missing': '`add_header Docker-Content-Digest <digest> always;` in each manifest location.',
    'content-encoding': 'For /v2/: `gzip off; gzip_static off;` and keep application/octet-stream and the manifest types out of `gzip_types`.',
    'error-body': 'Use the generated configuration: its `error_page 404 @registrish_not_found` in `location /v2/` answers with the OCI error body.',
    'missing-200': '`try_files $uri =404;` in the /v2/ location (not `/index.html`).',
  },
};
