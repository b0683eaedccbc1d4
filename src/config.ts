import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RegistrishError } from './errors.ts';
import {
  DIGEST_ALLOWED,
  NAME_ALLOWED,
  PLATFORM_ALLOWED,
  TAG_ALLOWED,
  defaultRepositoryName,
  digestProblem,
  hostProblem,
  isLoopbackHost,
  parsePlatform,
  parseReference,
  platformKey,
  platformProblem,
  quote,
  registryApiHost,
  repositoryNameProblem,
  tagProblem,
} from './reference.ts';
import type { ImageSpec, PlatformFilter, RegistrishConfig, SourceRef } from './types.ts';

// images.json → validated ImageSpecs. Every problem is collected and reported at once, each
// naming the entry and field (`images[3].tags[1]`), so one edit-build cycle fixes them all.
// images.schema.json describes the same format for editors; test/config.test.ts keeps the two
// in agreement.
//
// Semantics worth knowing:
// - A source with a tag or digest pins ONE image, published under every tag in `tags`
//   (default: the source's tag, else `latest`).
// - A source with neither (`docker.io/library/nginx`) mirrors: each tag in `tags` (default
//   `latest`) is fetched from the source tag of the same name. Such an entry yields one
//   ImageSpec per tag, so every SourceRef carries the tag or digest to fetch.

export const CONFIG_KEYS = ['$schema', 'images', 'insecureRegistries'] as const;
export const ENTRY_KEYS = ['source', 'name', 'tags', 'platforms'] as const;

/**
 * Name components that would collide with the static layout the registry is served from:
 * `/v2/<name>/manifests/…`, `/v2/<name>/blobs/…`, `/v2/<name>/tags/list`, `/v2/_catalog`.
 */
export const RESERVED_NAME_COMPONENTS = ['manifests', 'blobs', 'tags', '_catalog'] as const;

/** Extra insecure (plain HTTP) registries, comma- or space-separated: for CI mirrors not worth committing. */
export const INSECURE_REGISTRIES_ENV = 'REGISTRISH_INSECURE_REGISTRIES';

const OCI_PREFIX = 'oci:';
const DEFAULT_TAG = 'latest';
const SCHEMA_HINT =
  'Add "$schema": "./node_modules/registrish/images.schema.json" to images.json for completion and checks in your editor.';

// Keys people reach for that mean something we have under another name.
const ENTRY_ALIASES: Record<string, string> = {
  src: 'source',
  image: 'source',
  ref: 'source',
  reference: 'source',
  from: 'source',
  repository: 'name',
  repo: 'name',
  as: 'name',
  target: 'name',
  arch: 'platforms',
};

/** All problems found in one images.json; `problems` are the message lines. */
export class ConfigError extends RegistrishError {
  readonly problems: readonly string[];
  constructor(problems: string[], options: { cause?: unknown; hint?: string } = {}) {
    const message =
      problems.length === 1 ? problems[0]! : `${problems.length} problems:\n${problems.map((p) => `  ${p}`).join('\n')}`;
    super(message, options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface ConfigOptions {
  /** Environment for REGISTRISH_INSECURE_REGISTRIES; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Reads and validates images.json. */
export async function loadConfig(file: string, opts: ConfigOptions = {}): Promise<RegistrishConfig> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new RegistrishError(
        `no images.json found at ${abs}: create it with the images to publish, e.g. {"images": ["alpine:3.20"]}`,
        { cause: err, hint: SCHEMA_HINT },
      );
    }
    if (code === 'EISDIR') throw new RegistrishError(`${abs} is a directory, not an images.json file`, { cause: err });
    throw new RegistrishError(`cannot read ${abs}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfigText(text, abs, opts);
}

/** Validates the text of images.json; `file` names it in messages and anchors relative `oci:` paths. */
export function parseConfigText(text: string, file: string, opts: ConfigOptions = {}): RegistrishConfig {
  const abs = path.resolve(file);
  const label = displayPath(abs);
  const data = parseJson(text, label);
  const problems: string[] = [];
  const report = (where: string, message: string) => problems.push(`${label}: ${where ? `${where}: ` : ''}${message}`);

  if (!isPlainObject(data)) {
    const wrap = Array.isArray(data) ? ' — wrap the list: {"images": [...]}' : '';
    throw new ConfigError([`${label}: expected an object like {"images": ["alpine:3.20"]}, got ${describeType(data)}${wrap}`], {
      hint: SCHEMA_HINT,
    });
  }
  checkKeys(data, CONFIG_KEYS, '', report);
  if (Object.hasOwn(data, '$schema') && typeof data.$schema !== 'string') {
    report('$schema', `expected a string (the path or URL of images.schema.json), got ${describeType(data.$schema)}`);
  }

  // Insecure registries first: every registry source's `insecure` depends on them.
  const insecureRegistries: string[] = [];
  if (Object.hasOwn(data, 'insecureRegistries')) {
    const list = data.insecureRegistries;
    if (!Array.isArray(list)) {
      report('insecureRegistries', `expected an array of host[:port] strings, e.g. ["registry.lan:5000"], got ${describeType(list)}`);
    } else {
      list.forEach((host, i) => {
        const problem = insecureHostProblem(host);
        if (problem) report(`insecureRegistries[${i}]`, problem);
        else insecureRegistries.push(host as string);
      });
    }
  }
  const env = opts.env ?? process.env;
  for (const host of (env[INSECURE_REGISTRIES_ENV] ?? '').split(/[\s,]+/).filter(Boolean)) {
    const problem = insecureHostProblem(host);
    if (problem) problems.push(`${INSECURE_REGISTRIES_ENV}: ${problem}`);
    else if (!insecureRegistries.includes(host)) insecureRegistries.push(host);
  }
  const insecure = new Set(insecureRegistries.map((h) => h.toLowerCase()));

  const entries: ParsedEntry[] = [];
  if (!Object.hasOwn(data, 'images')) {
    report('', 'missing "images": list the images to publish, e.g. "images": ["alpine:3.20"]');
  } else if (!Array.isArray(data.images)) {
    report('images', `expected an array of images, e.g. ["alpine:3.20"], got ${describeType(data.images)}`);
  } else if (data.images.length === 0) {
    report('images', 'the list is empty — add at least one image to publish, e.g. ["alpine:3.20"]');
  } else {
    const baseDir = path.dirname(abs);
    data.images.forEach((entry, i) => {
      const parsed = parseEntry(entry, i, baseDir, insecure, report);
      if (parsed) entries.push(parsed);
    });
  }
  checkCollisions(entries, report);

  if (problems.length) throw new ConfigError(problems, { hint: SCHEMA_HINT });
  return { file: abs, images: entries.flatMap(expandEntry), insecureRegistries };
}

/** A log-friendly description of where an image comes from: `docker.io/library/alpine:3.20`, `oci:example/hello:1.0`. */
export function describeSource(spec: ImageSpec | SourceRef): string {
  const src = 'source' in spec ? spec.source : spec;
  const suffix = `${src.tag !== undefined ? `:${src.tag}` : ''}${src.digest !== undefined ? `@${src.digest}` : ''}`;
  if (src.kind === 'registry') return `${src.registry}/${src.repository}${suffix}`;
  let dir = src.dir;
  try {
    dir = splitOciReference(src.original).dir;
  } catch {
    // Not written by us: the absolute directory still says where it is.
  }
  return `${OCI_PREFIX}${dir}${suffix}`;
}

/**
 * Splits `oci:<dir>[:<tag>][@<digest>]` (skopeo's syntax) without touching the file system.
 * The digest is what follows the last `@` when that looks like `algorithm:…`. The tag is what
 * follows the last `:` when that contains no `/` or `\`; so a directory whose last component
 * contains `:` is written with a trailing slash (`oci:my:dir/` or `oci:my:dir/:1.0`).
 */
export function splitOciReference(s: string): { dir: string; tag?: string; digest?: string } {
  const fail: (why: string) => never = (why) => {
    throw new RegistrishError(`${quote(s)} is not a valid OCI layout reference: ${why} (write oci:DIR, oci:DIR:TAG or oci:DIR@DIGEST)`);
  };
  if (!s.startsWith(OCI_PREFIX)) fail('it does not start with "oci:"');
  let rest = s.slice(OCI_PREFIX.length);
  const out: { dir: string; tag?: string; digest?: string } = { dir: '' };
  const at = rest.lastIndexOf('@');
  if (at >= 0 && /^[A-Za-z0-9+._-]+:/.test(rest.slice(at + 1))) {
    const digest = rest.slice(at + 1);
    const problem = digestProblem(digest);
    if (problem) fail(`the digest ${quote(digest)} is not valid: ${problem} (${DIGEST_ALLOWED})`);
    out.digest = digest;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !/[/\\]/.test(rest.slice(colon + 1))) {
    const tag = rest.slice(colon + 1);
    const problem = tagProblem(tag);
    if (problem) fail(`the tag ${quote(tag)} is not valid: ${problem} (${TAG_ALLOWED})`);
    out.tag = tag;
    rest = rest.slice(0, colon);
  }
  if (rest === '') fail('the directory is empty');
  if (/[\0-\x1f]/.test(rest)) fail('the directory contains a control character');
  out.dir = rest;
  return out;
}

// ---------------------------------------------------------------------------------------------

interface ParsedEntry {
  index: number;
  source: SourceRef;
  name: string;
  tags: string[];
  platforms?: PlatformFilter[];
}

type Report = (where: string, message: string) => void;

function parseEntry(
  entry: unknown,
  i: number,
  baseDir: string,
  insecure: Set<string>,
  report: Report,
): ParsedEntry | undefined {
  const at = `images[${i}]`;
  let obj: Record<string, unknown>;
  if (typeof entry === 'string') {
    obj = { source: entry };
  } else if (isPlainObject(entry)) {
    obj = entry;
    checkKeys(obj, ENTRY_KEYS, at, report, ENTRY_ALIASES);
  } else {
    report(at, `expected an image reference string or an object with "source", got ${describeType(entry)}`);
    return undefined;
  }
  // Where a source problem is reported: the shorthand string is the entry itself.
  const sourceAt = typeof entry === 'string' ? at : `${at}.source`;
  let ok = true;

  let source: SourceRef | undefined;
  let defaultName: string | undefined;
  let defaultNameFrom = '';
  if (!Object.hasOwn(obj, 'source')) {
    report(at, 'missing "source": the image to publish, e.g. "source": "alpine:3.20"');
    ok = false;
  } else if (typeof obj.source !== 'string') {
    report(sourceAt, `expected a string (an image reference like "alpine:3.20" or "oci:DIR:TAG"), got ${describeType(obj.source)}`);
    ok = false;
  } else {
    const original = obj.source;
    try {
      if (original.startsWith(OCI_PREFIX)) {
        const { dir, tag, digest } = splitOciReference(original);
        const absDir = path.resolve(baseDir, dir);
        source = { kind: 'oci-layout', dir: absDir, original };
        if (tag !== undefined) source.tag = tag;
        if (digest !== undefined) source.digest = digest;
        defaultName = path.basename(absDir);
        defaultNameFrom = `the directory name ${quote(defaultName)}`;
      } else {
        const ref = parseReference(original);
        source = {
          kind: 'registry',
          registry: ref.domain,
          apiHost: registryApiHost(ref.domain),
          insecure: isLoopbackHost(ref.domain) || insecure.has(ref.domain.toLowerCase()),
          repository: ref.path,
          original,
        };
        if (ref.tag !== undefined) source.tag = ref.tag;
        if (ref.digest !== undefined) source.digest = ref.digest;
        defaultName = defaultRepositoryName(ref.domain, ref.path);
        defaultNameFrom = `the source's repository ${quote(defaultName)}`;
      }
    } catch (err) {
      if (!(err instanceof RegistrishError)) throw err;
      report(sourceAt, err.message);
      ok = false;
    }
  }

  let name: string | undefined;
  if (Object.hasOwn(obj, 'name')) {
    if (typeof obj.name !== 'string') {
      report(`${at}.name`, `expected a string (the repository name on your registry, e.g. "tools/app"), got ${describeType(obj.name)}`);
      ok = false;
    } else {
      const problem = publishedNameProblem(obj.name);
      if (problem) {
        report(`${at}.name`, `${quote(obj.name)} is not a valid repository name: ${problem}`);
        ok = false;
      } else {
        name = obj.name;
      }
    }
  } else if (defaultName !== undefined) {
    const problem = publishedNameProblem(defaultName);
    if (problem) {
      const suggestion = suggestName(defaultName);
      report(
        at,
        `cannot use ${defaultNameFrom} as the repository name: ${problem} — add "name"${suggestion ? `, e.g. "name": ${quote(suggestion)}` : ''}`,
      );
      ok = false;
    } else {
      name = defaultName;
    }
  }

  let tags: string[] | undefined;
  if (Object.hasOwn(obj, 'tags')) {
    tags = parseStringList(obj.tags, `${at}.tags`, 'tags, e.g. ["1.0", "latest"]', report, (tag, _j, seen) => {
      const problem = tagProblem(tag);
      if (problem) {
        // The grammar alone explains a short printable tag; say more when the problem is invisible.
        const visible = /^[\x20-\x7e]{1,128}$/.test(tag);
        return `${quote(tag)} is not a valid tag (${TAG_ALLOWED})${visible ? '' : `: ${problem}`}`;
      }
      const same = seen.get(tag);
      if (same !== undefined) return `${quote(tag)} is listed twice (also tags[${same}])`;
      for (const [other, j] of seen) {
        if (other.toLowerCase() === tag.toLowerCase()) {
          return `${quote(tag)} and tags[${j}] ${quote(other)} differ only in case; static hosts such as Netlify match paths case-insensitively, so one would overwrite the other`;
        }
      }
      return undefined;
    });
    if (!tags) ok = false;
  } else if (source) {
    tags = [source.tag ?? DEFAULT_TAG];
  }

  let platforms: PlatformFilter[] | undefined;
  if (Object.hasOwn(obj, 'platforms')) {
    const keys = new Map<string, number>();
    const list = parseStringList(obj.platforms, `${at}.platforms`, 'platforms, e.g. ["linux/amd64", "linux/arm64"]', report, (p, j) => {
      const problem = platformProblem(p);
      if (problem) return `${quote(p)} is not a valid platform: ${problem} (${PLATFORM_ALLOWED})`;
      const key = platformKey(parsePlatform(p));
      const same = keys.get(key);
      if (same !== undefined) return `${quote(p)} is the same platform as platforms[${same}]`;
      keys.set(key, j);
      return undefined;
    });
    if (list) platforms = list.map(parsePlatform);
    else ok = false;
  }

  if (!ok || !source || name === undefined || !tags) return undefined;
  const out: ParsedEntry = { index: i, source, name, tags };
  if (platforms) out.platforms = platforms;
  return out;
}

/**
 * Validates a non-empty array of strings, reporting each bad element; `check` gets the element,
 * its position and the earlier good elements (value → position). Undefined if anything was wrong.
 */
function parseStringList(
  value: unknown,
  at: string,
  what: string,
  report: Report,
  check: (item: string, index: number, seen: Map<string, number>) => string | undefined,
): string[] | undefined {
  if (!Array.isArray(value)) {
    const example = typeof value === 'string' ? ` — write [${quote(value)}]` : '';
    report(at, `expected an array of ${what}, got ${describeType(value)}${example}`);
    return undefined;
  }
  if (value.length === 0) {
    report(at, `the list is empty — add at least one, or leave "${at.slice(at.lastIndexOf('.') + 1)}" out for the default`);
    return undefined;
  }
  const seen = new Map<string, number>();
  let ok = true;
  value.forEach((item, j) => {
    const where = `${at}[${j}]`;
    if (typeof item !== 'string') {
      report(where, `expected a string, got ${describeType(item)}`);
      ok = false;
      return;
    }
    const problem = check(item, j, seen);
    if (problem) {
      report(where, problem);
      ok = false;
    } else {
      seen.set(item, j);
    }
  });
  return ok ? (value as string[]) : undefined;
}

/** Why `name` cannot be published, or undefined: the repository grammar plus our static layout. */
function publishedNameProblem(name: string): string | undefined {
  const problem = repositoryNameProblem(name);
  if (problem) return `${problem} (${NAME_ALLOWED})`;
  const reserved = name.split('/').find((c) => (RESERVED_NAME_COMPONENTS as readonly string[]).includes(c));
  if (reserved) {
    return (
      `its component "${reserved}" would collide with the registry's own paths in the static file layout ` +
      `(/v2/<name>/manifests/…, /v2/<name>/blobs/…, /v2/<name>/tags/list); ` +
      `components may not be ${RESERVED_NAME_COMPONENTS.map((c) => `"${c}"`).join(', ')}`
    );
  }
  return undefined;
}

/** A valid name close to `s` (lowercased, runs of other characters turned into "-"), for a suggestion. */
function suggestName(s: string): string | undefined {
  const candidate = s
    .toLowerCase()
    .replace(/[^a-z0-9._/-]+/g, '-')
    .replace(/[._-]*\/[._-]*/g, '/')
    .replace(/^[._/-]+|[._/-]+$/g, '')
    .replace(/[.]{2,}/g, '.');
  return candidate && !publishedNameProblem(candidate) ? candidate : undefined;
}

function insecureHostProblem(host: unknown): string | undefined {
  if (typeof host !== 'string') return `expected a host[:port] string, e.g. "registry.lan:5000", got ${describeType(host)}`;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(host);
  if (scheme) return `${quote(host)} is not a host[:port]: drop "${scheme[0]}"`;
  const problem = hostProblem(host);
  return problem ? `${quote(host)} is not a valid host[:port]: ${problem}` : undefined;
}

/** Two entries must not publish the same name:tag, nor tags of one name differing only in case. */
function checkCollisions(entries: ParsedEntry[], report: Report): void {
  const exact = new Map<string, number>();
  const folded = new Map<string, { index: number; tag: string }>();
  const reported = new Set<string>();
  for (const e of entries) {
    for (const tag of e.tags) {
      const key = `${e.name}:${tag}`;
      const first = exact.get(key);
      if (first !== undefined && first !== e.index) {
        report('', `images[${first}] and images[${e.index}] both publish ${quote(key)}`);
        continue;
      }
      exact.set(key, e.index);
      const fkey = `${e.name}:${tag.toLowerCase()}`;
      const other = folded.get(fkey);
      if (other && other.index !== e.index && other.tag !== tag && !reported.has(`${fkey}/${e.index}`)) {
        reported.add(`${fkey}/${e.index}`);
        report(
          '',
          `images[${other.index}] and images[${e.index}] publish ${quote(`${e.name}:${other.tag}`)} and ${quote(key)}, ` +
            'which differ only in case; static hosts such as Netlify match paths case-insensitively, so one would overwrite the other',
        );
      } else if (!other) {
        folded.set(fkey, { index: e.index, tag });
      }
    }
  }
}

/** A pinned source gives one ImageSpec; an unpinned one gives one per tag, fetching that tag. */
function expandEntry(e: ParsedEntry): ImageSpec[] {
  const { source } = e;
  const base = (src: SourceRef, tags: string[]): ImageSpec =>
    e.platforms ? { index: e.index, source: src, name: e.name, tags, platforms: e.platforms } : { index: e.index, source: src, name: e.name, tags };
  if (source.tag !== undefined || source.digest !== undefined) return [base(source, e.tags)];
  return e.tags.map((tag) => base({ ...source, tag }, [tag]));
}

// ---------------------------------------------------------------------------------------------
// Generic helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `a string (${quote(v)})`;
    case 'number':
    case 'boolean':
      return `a ${typeof v} (${String(v)})`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

function checkKeys(
  obj: Record<string, unknown>,
  known: readonly string[],
  at: string,
  report: Report,
  aliases: Record<string, string> = {},
): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const suggestion = aliases[key.toLowerCase()] ?? closestKey(key, known);
    report(
      at,
      suggestion
        ? `unknown key ${quote(key)} — did you mean "${suggestion}"?`
        : `unknown key ${quote(key)} (allowed: ${known.map((k) => `"${k}"`).join(', ')})`,
    );
  }
}

/** The known key a typo most likely meant: small edit distance (case-insensitive), or a prefix. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: { key: string; d: number } | undefined;
  for (const candidate of known) {
    const d = editDistance(k, candidate.toLowerCase());
    if (!best || d < best.d) best = { key: candidate, d };
  }
  if (best && best.d <= Math.max(1, Math.floor(k.length / 3))) return best.key;
  if (k.length >= 4) return known.find((c) => c.toLowerCase().startsWith(k));
  return undefined;
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (`nmae` → `name`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Relative to the working directory when inside it (`images.json`), else absolute. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}

// ---------------------------------------------------------------------------------------------
// JSON with line and column in syntax errors

function parseJson(text: string, label: string): unknown {
  // Editors on Windows may save a BOM; JSON.parse rejects it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') {
    throw new ConfigError([`${label}: the file is empty — write e.g. {"images": ["alpine:3.20"]}`], { hint: SCHEMA_HINT });
  }
  let parsed: unknown;
  let parseError: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    parseError = err;
  }
  // V8's messages name a position only sometimes ("Unexpected token ']', "[1,]" is not valid
  // JSON" has none), so a small scanner finds where and why; it also finds duplicate properties,
  // which JSON.parse accepts.
  // A file that is not JSON at all is reported for that first (a duplicate earlier in it would be a
  // second thing to fix, found on the next run).
  const problem = locateJsonError(body, { duplicates: !parseError });
  if (parseError || problem) {
    const found = problem ?? fromV8Message((parseError as Error).message, body);
    const { line, column } = lineAndColumn(body, found.offset);
    const lines = body.split('\n');
    const src = (lines[line - 1] ?? '').replace(/\r$/, '');
    const excerpt = src.length <= 160 ? `\n  ${src}\n  ${src.slice(0, column - 1).replace(/[^\t]/g, ' ')}^` : '';
    throw new ConfigError([`${label}: ${parseError ? 'invalid JSON at' : 'at'} line ${line}, column ${column}: ${found.reason}${excerpt}`], {
      cause: parseError,
      hint: SCHEMA_HINT,
    });
  }
  return parsed;
}

function fromV8Message(message: string, text: string): { offset: number; reason: string } {
  const m = / in JSON at position (\d+)/.exec(message);
  const reason = message.replace(/ in JSON at position \d+.*$/, '').replace(/, ".*" is not valid JSON$/s, '');
  return { offset: m ? Number(m[1]) : text.length, reason };
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

const MAX_JSON_DEPTH = 200;

/**
 * The offset and a readable reason of the first JSON syntax error (or duplicate property, unless
 * `duplicates: false`), or undefined if there is none.
 */
export function locateJsonError(text: string, opts: { duplicates?: boolean } = {}): { offset: number; reason: string } | undefined {
  const duplicates = opts.duplicates ?? true;
  let depth = 0;
  class Stop {
    constructor(
      readonly offset: number,
      readonly reason: string,
    ) {}
  }
  let i = 0;
  const stop = (reason: string, at = i): never => {
    throw new Stop(at, reason);
  };
  const found = () => (i >= text.length ? 'the end of the file' : quote(text[i]));
  const ws = () => {
    for (;;) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) stop('comments are not allowed in JSON');
      else return;
    }
  };
  const string = () => {
    const start = i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) stop('unterminated string', start);
      if (c === '"') {
        i++;
        return;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else stop(`invalid escape ${quote(text.slice(i, i + 2))} in a string`);
      } else if (c!.charCodeAt(0) < 0x20) {
        stop(c === '\n' ? 'line break inside a string (write \\n, or close the string with ")' : 'control character inside a string');
      } else {
        i++;
      }
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    // The scanner recurses: far deeper than any images.json, stop with a message, not a stack overflow.
    if ((c === '{' || c === '[') && depth >= MAX_JSON_DEPTH) stop(`nested deeper than ${MAX_JSON_DEPTH} levels`);
    depth++;
    try {
      valueAt(c);
    } finally {
      depth--;
    }
  };
  const valueAt = (c: string | undefined): void => {
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      const keys = new Set<string>();
      for (let comma = -1; ; ) {
        ws();
        if (text[i] === '}') stop('trailing comma before "}" (JSON allows none)', comma);
        if (text[i] !== '"') {
          stop(text[i] === "'" ? 'property names need double quotes, not single' : `expected a property name in double quotes, found ${found()}`);
        }
        const keyAt = i;
        string();
        // Valid JSON, but JSON.parse would silently keep only the last value: almost always a mistake.
        if (duplicates) {
          const key = JSON.parse(text.slice(keyAt, i)) as string;
          if (keys.has(key)) stop(`duplicate property ${quote(key)} in one object (only the last one would count)`, keyAt);
          keys.add(key);
        }
        ws();
        if (text[i] !== ':') stop(`expected ":" after the property name, found ${found()}`);
        i++;
        value();
        ws();
        if (text[i] === ',') comma = i++;
        else if (text[i] === '}') return void i++;
        else stop(`expected "," or "}" after a property value, found ${found()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (let comma = -1; ; ) {
        ws();
        if (text[i] === ']') stop('trailing comma before "]" (JSON allows none)', comma);
        value();
        ws();
        if (text[i] === ',') comma = i++;
        else if (text[i] === ']') return void i++;
        else stop(`expected "," or "]" after an array element, found ${found()}`);
      }
    }
    if (c === '"') return string();
    if (c === "'") stop('strings need double quotes, not single');
    const num = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    num.lastIndex = i;
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      const m = num.exec(text);
      if (!m) stop('invalid number');
      i += m![0].length;
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    stop(`expected a value, found ${found()}`);
  };
  try {
    value();
    ws();
    if (i < text.length) stop(`unexpected ${found()} after the end of the JSON value`);
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, reason: e.reason };
    throw e;
  }
}
