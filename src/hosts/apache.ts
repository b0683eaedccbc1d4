import path from 'node:path';
import { firstHeader } from '../http/response.ts';
import { RegistrishError } from '../util/errors.ts';
import { headersFor } from '../publish/headers.ts';
import type { Host, HostCheck, HostFile } from './host.ts';
import { compareStrings } from '../util/format.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { NOT_FOUND_FILES, notFoundBody, publishedRepositories, type NotFoundKind } from '../publish/not-found.ts';
import { DIGEST_PATTERN } from '../model/digest.ts';
import { blobRedirect, onSite, repositoryAlternation, type BlobRedirect } from '../publish/blob-store.ts';

// Apache writer (shared hosting): one `.htaccess` in every folder of the tree that holds registry
// files, rendering exactly headersFor() for each file.
//
// Why per-folder files with <Files> by basename and not one top-level file with <If> per URL:
// <Files> works wherever the folder is mounted (`/~user/`, a subfolder) and `:` in file names is
// fine inside quotes; Apache re-reads .htaccess on every request, so each request only parses the
// small files on its own path. Per header and folder the most compact exact form is used:
// - the same value for every file of the folder → one folder-wide directive;
// - the value is the file name itself (blob digests) → one <FilesMatch> whose named group is read
//   back with %{MATCH_…}e (Apache ≥ 2.4.8), so a folder of 10,000 blobs needs no list;
// - otherwise a <Files "name"> block per file.
// .htaccess sections apply to subfolders too: a folder's file whose name an ancestor's <Files> or
// <FilesMatch> also matches gets its own <Files> block repeating every header (set or unset),
// which Apache merges after the ancestor's, so the nearest folder always wins.
//
// The two traps (see docs/hosting-nginx-apache-cloudflare.md):
// - `AllowOverride None` silently ignores .htaccess: every response under /v2/ carries the
//   sentinel header APACHE_SENTINEL, so a missing one proves the files are not read.
// - mod_mime_magic labels extension-less gzip blobs `Content-Encoding: x-gzip` (clients then
//   gunzip them and the digest fails). Measured with Apache 2.4 here: ForceType runs in fixups,
//   after mime_magic's type checker, and `Header unset Content-Encoding` cannot remove it (the
//   header is added from r->content_encoding after mod_headers ran). No .htaccess directive turns
//   mime_magic off, so it must be disabled server-wide; apacheResponseProblem() detects it from a
//   response, for a check. `SetEnv no-gzip` keeps mod_deflate away.
// Needs `AllowOverride FileInfo` (ForceType, Header, SetEnv, RedirectMatch, ErrorDocument) and mod_headers + mod_env.

export const APACHE_FILE = '.htaccess';
export const APACHE_SENTINEL = 'X-Registrish-Config';
export const APACHE_SENTINEL_VALUE = 'htaccess';
/** Folders with more files than this get a warning (shared hosts often cap inodes per folder). */
export const APACHE_WARN_FILES_PER_DIR = 10_000;

/** Why `s` cannot go inside an Apache double-quoted argument, or undefined. */
function apacheStringProblem(s: string): string | undefined {
  // `"` ends the argument, `\` escapes, `%` starts a mod_headers format specifier, `$`/`{`
  // could be read as variables; registry names, tags and header values never hold them.
  const bad = /[\u0000-\u001f\u007f"\\%$<>{}]/u.exec(s);
  return bad ? `it contains ${JSON.stringify(bad[0])}` : undefined;
}

export function checkApache(paths: readonly PublishedPath[]): HostCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const p of paths) {
    const problem = apacheStringProblem(p.file);
    if (problem) errors.push(`${p.urlPath} cannot be written into a .htaccess <Files> section: ${problem}`);
    for (const [name, value] of headersFor(p)) {
      const vp = apacheStringProblem(value);
      if (vp) errors.push(`header ${name} of ${p.urlPath} cannot be written into a .htaccess: ${vp}`);
    }
  }
  const perDir = new Map<string, Set<string>>();
  for (const p of paths) {
    const dir = path.posix.dirname(p.file);
    let s = perDir.get(dir);
    if (!s) perDir.set(dir, (s = new Set()));
    s.add(p.file);
  }
  for (const [dir, files] of [...perDir].sort(([a], [b]) => compareStrings(a, b))) {
    if (files.size > APACHE_WARN_FILES_PER_DIR) {
      warnings.push(`${dir}/ holds ${files.size} files; shared hosts often limit files per folder or in total (inodes)`);
    }
  }
  return { errors, warnings };
}

/** A header as Apache is told it: Content-Type through ForceType, the rest through mod_headers. */
type Value = string | undefined;

/** PCRE and JS agree on this pattern; it is the only regex we emit. */
const CAPTURE_GROUP = 'rshfile';
const CAPTURE_PATTERN = '^(?<rshfile>sha256:[0-9a-f]{64})$';
const CAPTURE_RE = /^(?<rshfile>sha256:[0-9a-f]{64})$/u;

interface DirPlan {
  dir: string;
  /** header → value for the whole folder (undefined = unset) */
  folder: Map<string, Value>;
  /** headers whose value is the file name */
  captured: string[];
  /** file basename → every header (set or unset) */
  perFile: Map<string, Map<string, Value>>;
}

function directive(name: string, value: Value, indent: string): string {
  if (name.toLowerCase() === 'content-type') {
    if (value === undefined) throw new RegistrishError('a registry file without Content-Type');
    return `${indent}ForceType ${value}`;
  }
  return value === undefined ? `${indent}Header unset ${name}` : `${indent}Header set ${name} "${value}"`;
}

/** Plans every folder's .htaccess (pure). */
function planApache(paths: readonly PublishedPath[]): DirPlan[] {
  const headerNames: string[] = [];
  const byDir = new Map<string, Map<string, Map<string, string>>>();
  for (const p of paths) {
    const problem = apacheStringProblem(p.file);
    if (problem) throw new RegistrishError(`cannot write ${p.urlPath} into a .htaccess: ${problem}`);
    const dir = path.posix.dirname(p.file);
    const base = path.posix.basename(p.file);
    const headers = new Map<string, string>();
    for (const [name, value] of headersFor(p)) {
      const vp = apacheStringProblem(value);
      if (vp) throw new RegistrishError(`cannot write header ${name} of ${p.urlPath} into a .htaccess: ${vp}`);
      if (!headerNames.includes(name)) headerNames.push(name);
      headers.set(name, value);
    }
    let files = byDir.get(dir);
    if (!files) byDir.set(dir, (files = new Map()));
    const prev = files.get(base);
    if (prev && JSON.stringify([...prev]) !== JSON.stringify([...headers])) {
      throw new RegistrishError(`${p.urlPath} is published twice with different headers`);
    }
    files.set(base, headers);
  }

  // Parents first, so each folder knows which names its ancestors' sections match.
  const dirs = [...byDir.keys()].sort((a, b) => a.split('/').length - b.split('/').length || compareStrings(a, b));
  const plans: DirPlan[] = [];
  const sectionsOf = new Map<string, { names: Set<string>; capture: boolean }>();
  for (const dir of dirs) {
    const files = byDir.get(dir)!;
    const bases = [...files.keys()].sort(compareStrings);
    const plan: DirPlan = { dir, folder: new Map(), captured: [], perFile: new Map() };
    const perFileHeaders = new Set<string>();
    for (const name of headerNames) {
      const values = bases.map((b) => files.get(b)!.get(name));
      if (values.every((v) => v === values[0])) plan.folder.set(name, values[0]);
      else if (bases.every((b, i) => values[i] === b && CAPTURE_RE.test(b))) plan.captured.push(name);
      else perFileHeaders.add(name);
    }
    // Names an ancestor's <Files>/<FilesMatch> would also catch in this folder. Only this folder's
    // own ancestors are looked up (not every folder planned so far: that was files × folders).
    const shadowed = (base: string): boolean => {
      for (let i = dir.lastIndexOf('/'); i > 0; i = dir.lastIndexOf('/', i - 1)) {
        const s = sectionsOf.get(dir.slice(0, i));
        if (s && (s.names.has(base) || (s.capture && CAPTURE_RE.test(base)))) return true;
      }
      return false;
    };
    for (const b of bases) {
      const all = shadowed(b);
      if (perFileHeaders.size === 0 && !all) continue;
      // A shadowed file repeats every header so that the ancestor's section cannot leak into it.
      const names = all ? headerNames : headerNames.filter((n) => perFileHeaders.has(n));
      plan.perFile.set(b, new Map(names.map((n) => [n, files.get(b)!.get(n)])));
    }
    sectionsOf.set(dir, { names: new Set(plan.perFile.keys()), capture: plan.captured.length > 0 });
    plans.push(plan);
  }
  return plans;
}

/**
 * Blobs kept in an object store: one RedirectMatch in the top .htaccess sends every blob URL of
 * the published repositories there with a 307 (a HEAD stays a HEAD). Not anchored at the start,
 * so the site may be mounted under a path (`/~user/`). No <IfModule>: without mod_alias the
 * blobs would silently answer 404; Apache's error on the directive says what is missing instead.
 */
export function renderApacheBlobRedirect(redirect: BlobRedirect | undefined): string[] {
  if (!redirect) return [];
  const problem = apacheStringProblem(redirect.base);
  if (problem) throw new RegistrishError(`the blob store address ${redirect.base} cannot be written into a .htaccess: ${problem}`);
  return [
    '# Blobs live in an object store (the `blobs` option): each blob URL is sent there; 307 keeps a HEAD a HEAD.',
    `RedirectMatch 307 "/v2/${repositoryAlternation(redirect.repositories)}/blobs/(${DIGEST_PATTERN})$" "${redirect.base}$1"`,
  ];
}

function renderDir(plan: DirPlan, top: boolean, redirect?: BlobRedirect): string {
  const lines = [
    '# Generated by registrish: exact registry headers for the files of this folder. Rewritten on every build.',
    '# Needs AllowOverride FileInfo, mod_headers and mod_env.',
  ];
  if (top) {
    lines.push(
      '# Sentinel: if a response under /v2/ lacks this header, Apache ignores .htaccess (AllowOverride None).',
      `Header always set ${APACHE_SENTINEL} "${APACHE_SENTINEL_VALUE}"`,
      '# Clients verify digests of the stored bytes: no on-the-fly compression by mod_deflate.',
      'SetEnv no-gzip 1',
      '# Only published files: .registrish-paths.json (and any dotfile) is not served.',
      '<IfModule mod_alias.c>',
      '  RedirectMatch 404 "/\\."',
      '</IfModule>',
      '# mod_mime_magic cannot be turned off from here (it labels gzip blobs "Content-Encoding: x-gzip"',
      '# and "Header unset" cannot remove that): it must be disabled server-wide (a2dismod mime_magic).',
      ...renderApacheBlobRedirect(redirect),
    );
  }
  for (const [name, value] of plan.folder) lines.push(directive(name, value, ''));
  if (plan.captured.length > 0) {
    lines.push(`<FilesMatch "${CAPTURE_PATTERN}">`);
    for (const name of plan.captured) {
      if (name.toLowerCase() === 'content-type') throw new RegistrishError('Content-Type cannot come from a file name');
      lines.push(`  Header set ${name} "%{MATCH_${CAPTURE_GROUP.toUpperCase()}}e"`);
    }
    lines.push('</FilesMatch>');
  }
  for (const [base, headers] of plan.perFile) {
    lines.push(`<Files "${base}">`);
    for (const [name, value] of headers) lines.push(directive(name, value, '  '));
    lines.push('</Files>');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Missing content: the folder's ErrorDocument, the OCI error body by path (publish/not-found.ts).
 * Apache reads the .htaccess of every existing folder on a request's path, so a missing tag of a
 * published repository meets its `manifests/` folder's, anything else under /v2/ the top one's.
 * The URL is absolute: a registry is always served at the root of its host (clients ask for /v2/).
 */
function notFoundDirective(dir: string, repos: ReadonlySet<string>): string | undefined {
  const m = /^v2\/(.+)\/(manifests|blobs)$/u.exec(dir);
  const kind: NotFoundKind | undefined = dir === 'v2' ? 'name' : m && repos.has(m[1]!) ? (m[2] === 'manifests' ? 'manifest' : 'blob') : undefined;
  return kind && `# A missing URL here answers 404 with the OCI error body.\nErrorDocument 404 /${NOT_FOUND_FILES[kind]}\n`;
}

/** Every .htaccess (path relative to the output folder → text), and the error bodies they name. */
export function renderApacheFiles(paths: readonly PublishedPath[]): HostFile[] {
  const plans = planApache(onSite(paths));
  const redirect = blobRedirect(paths);
  const topDir = plans.find((p) => p.dir === 'v2') ? 'v2' : undefined;
  const repos = new Set(publishedRepositories(paths));
  const files = plans.map((plan) => ({
    file: `${plan.dir}/${APACHE_FILE}`,
    text: renderDir(plan, plan.dir === topDir, redirect) + (notFoundDirective(plan.dir, repos) ?? ''),
  }));
  if (!topDir) throw new RegistrishError('no v2/ folder among the published paths');
  const bodies = (Object.keys(NOT_FOUND_FILES) as NotFoundKind[]).map((kind) => ({ file: NOT_FOUND_FILES[kind], text: notFoundBody(kind) }));
  return [...files, ...bodies];
}

export async function renderApache(_outDir: string, paths: PublishedPath[]): Promise<{ files: HostFile[]; warnings: string[] }> {
  return { files: renderApacheFiles(paths), warnings: [] };
}

/**
 * What is wrong with an Apache response for a published path, judged from its headers: the
 * .htaccess files are ignored (no sentinel), or mod_mime_magic added a Content-Encoding.
 */
export function apacheResponseProblem(headers: { get(name: string): string | null }): string | undefined {
  if (headers.get(APACHE_SENTINEL) !== APACHE_SENTINEL_VALUE) {
    return `no ${APACHE_SENTINEL} header: Apache ignores the generated .htaccess files (AllowOverride None?); allow at least "AllowOverride FileInfo" for the site folder`;
  }
  const enc = headers.get('content-encoding');
  if (enc) {
    return `Content-Encoding: ${enc} on a registry file: mod_mime_magic is probably enabled; clients would decode the blob and fail its digest. Disable it server-wide (a2dismod mime_magic)`;
  }
  return undefined;
}

export const apache: Host = {
  name: 'apache',
  writer: { check: checkApache, render: renderApache, blobRedirects: true },
  // Every generated .htaccess sets a sentinel header: without it on /v2/, Apache is not reading
  // them (AllowOverride None), and every manifest type `check` sees is Apache's guess.
  probeBase(headers) {
    if (firstHeader(headers, APACHE_SENTINEL) === APACHE_SENTINEL_VALUE) return undefined;
    return { kind: 'htaccess-ignored', message: `no ${APACHE_SENTINEL} header: Apache does not read the generated .htaccess files` };
  },
  fixes: {
    'base-status': 'Make `DirectoryIndex index.html` apply to /v2/ (in the server config if AllowOverride None ignores .htaccess).',
    'manifest-type': '`<Location "/v2/<name>/manifests/<ref>"> ForceType <mediaType> </Location>` in the server config (.htaccess is ignored under AllowOverride None).',
    'type-params': '`AddDefaultCharset Off` for /v2/.',
    'digest-header-missing': '`Header always set Docker-Content-Digest <digest>` in each manifest <Location>.',
    'content-encoding': 'mod_mime_magic labels gzip blobs `x-gzip`: disable it for /v2/ (remove MimeMagicFile) and `SetEnv no-gzip 1` (mod_deflate) there.',
    'error-body': 'Deploy the generated .htaccess files and v2/_errors/ (their ErrorDocument needs AllowOverride FileInfo).',
    'missing-200': 'Exclude /v2/ from `FallbackResource` / rewrite-to-index rules.',
  },
};
