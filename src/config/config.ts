import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PLATFORM_ALLOWED, parsePlatform, platformKey, platformProblem, type PlatformFilter } from '../model/platform.ts';
import { hostProblem, NAME_ALLOWED, repositoryNameProblem, TAG_ALLOWED, tagProblem } from '../model/reference.ts';
import { parseSource } from '../sources/kinds.ts';
import type { SourceRef } from '../sources/source.ts';
import { RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import { parseJsonLocated, JsonSyntaxError } from './json.ts';
import { checkKeys, describeType, isPlainObject, type Report } from './keys.ts';
import { parseAttachments, parseVerify, type ParsedVerify } from './supply-chain.ts';
import { parseTagRules } from './tag-rules.ts';
import type { ImageSpec, RegistrishConfig, TagRules, TagSelection, VerifyPolicy } from './types.ts';

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

export const CONFIG_KEYS = ['$schema', 'images', 'insecureRegistries', 'attachments', 'verify'] as const;
export const ENTRY_KEYS = ['source', 'name', 'tags', 'platforms', 'attachments', 'verify'] as const;

/**
 * Name components that would collide with the static layout the registry is served from:
 * `/v2/<name>/manifests/…`, `/v2/<name>/blobs/…`, `/v2/<name>/tags/list`, `/v2/_catalog`.
 */
export const RESERVED_NAME_COMPONENTS = ['manifests', 'blobs', 'tags', 'referrers', '_catalog'] as const;

/** Extra insecure (plain HTTP) registries, comma- or space-separated: for CI mirrors not worth committing. */
export const INSECURE_REGISTRIES_ENV = 'REGISTRISH_INSECURE_REGISTRIES';

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

  // Supply-chain defaults for every entry.
  const baseDir = path.dirname(abs);
  const defaults: EntryDefaults = {};
  if (Object.hasOwn(data, 'attachments')) defaults.attachments = parseAttachments(data.attachments, 'attachments', report);
  if (Object.hasOwn(data, 'verify')) defaults.verify = parseVerify(data.verify, 'verify', baseDir, report, false);

  const entries: ParsedEntry[] = [];
  if (!Object.hasOwn(data, 'images')) {
    report('', 'missing "images": list the images to publish, e.g. "images": ["alpine:3.20"]');
  } else if (!Array.isArray(data.images)) {
    report('images', `expected an array of images, e.g. ["alpine:3.20"], got ${describeType(data.images)}`);
  } else if (data.images.length === 0) {
    report('images', 'the list is empty — add at least one image to publish, e.g. ["alpine:3.20"]');
  } else {
    data.images.forEach((entry, i) => {
      const parsed = parseEntry(entry, i, baseDir, insecure, defaults, report);
      if (parsed) entries.push(parsed);
    });
  }
  checkCollisions(entries, report);

  if (problems.length) throw new ConfigError(problems, { hint: SCHEMA_HINT });
  return {
    file: abs,
    images: entries.filter((e) => !e.rules).flatMap(expandEntry),
    selections: entries.filter((e) => e.rules).map((e) => selectionOf(e)),
    insecureRegistries,
  };
}

// ---------------------------------------------------------------------------------------------

interface ParsedEntry {
  index: number;
  source: SourceRef;
  name: string;
  tags: string[];
  platforms?: PlatformFilter[];
  attachments?: boolean;
  verify?: VerifyPolicy;
  /** Tag rules instead of a list (then `tags` is empty). */
  rules?: TagRules;
}

/** Top-level values every entry inherits (undefined after a reported problem). */
interface EntryDefaults {
  attachments?: boolean;
  verify?: ParsedVerify;
}


function parseEntry(
  entry: unknown,
  i: number,
  baseDir: string,
  insecure: Set<string>,
  defaults: EntryDefaults,
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
  let identity: string | undefined;
  let defaultName: string | undefined;
  let defaultNameFrom = '';
  if (!Object.hasOwn(obj, 'source')) {
    report(at, 'missing "source": the image to publish, e.g. "source": "alpine:3.20"');
    ok = false;
  } else if (typeof obj.source !== 'string') {
    report(sourceAt, `expected a string (an image reference like "alpine:3.20" or "oci:DIR:TAG"), got ${describeType(obj.source)}`);
    ok = false;
  } else {
    try {
      const parsed = parseSource(obj.source, { baseDir, insecureRegistries: insecure });
      source = parsed.ref;
      identity = parsed.identity;
      defaultName = parsed.defaultName;
      defaultNameFrom = parsed.defaultNameFrom;
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
  let rules: TagRules | undefined;
  if (Object.hasOwn(obj, 'tags') && isPlainObject(obj.tags)) {
    rules = parseTagRules(obj.tags, `${at}.tags`, report);
    if (source && (source.tag !== undefined || source.digest !== undefined)) {
      report(`${at}.tags`, `tag rules select among the repository's tags, but "source" names ${source.digest !== undefined ? 'a digest' : `the tag ${quote(source.tag)}`}: remove it from "source"`);
      ok = false;
    }
    if (!rules) ok = false;
    tags = [];
  } else if (Object.hasOwn(obj, 'tags')) {
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

  const attachments = Object.hasOwn(obj, 'attachments') ? parseAttachments(obj.attachments, `${at}.attachments`, report) : defaults.attachments;
  const verify = Object.hasOwn(obj, 'verify') ? parseVerify(obj.verify, `${at}.verify`, baseDir, report, true) : defaults.verify;
  if ((Object.hasOwn(obj, 'attachments') && attachments === undefined) || (Object.hasOwn(obj, 'verify') && verify === undefined)) ok = false;

  if (!ok || !source || name === undefined || !tags) return undefined;
  const out: ParsedEntry = { index: i, source, name, tags };
  if (rules) out.rules = rules;
  if (platforms) out.platforms = platforms;
  if (attachments) out.attachments = true;
  if (verify) {
    // Signatures name the repository they were made for: the source's, unless images.json says otherwise.
    const id = verify.identity ?? identity;
    out.verify = id === undefined ? { keys: verify.keys } : { keys: verify.keys, identity: id };
  }
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

/** An entry with tag rules: everything but the tags, which the build lists and selects. */
function selectionOf(e: ParsedEntry): TagSelection {
  const sel: TagSelection = { index: e.index, source: e.source, name: e.name, rules: e.rules! };
  if (e.platforms) sel.platforms = e.platforms;
  if (e.attachments) sel.attachments = true;
  if (e.verify) sel.verify = e.verify;
  return sel;
}

/** A pinned source gives one ImageSpec; an unpinned one gives one per tag, fetching that tag. */
function expandEntry(e: ParsedEntry): ImageSpec[] {
  const { source } = e;
  const base = (src: SourceRef, tags: string[]): ImageSpec => {
    const spec: ImageSpec = { index: e.index, source: src, name: e.name, tags };
    if (e.platforms) spec.platforms = e.platforms;
    if (e.attachments) spec.attachments = true;
    if (e.verify) spec.verify = e.verify;
    return spec;
  };
  if (source.tag !== undefined || source.digest !== undefined) return [base(source, e.tags)];
  return e.tags.map((tag) => base({ ...source, tag }, [tag]));
}

/** Parses images.json's text; syntax errors become a ConfigError with line, column and excerpt. */
function parseJson(text: string, label: string): unknown {
  if (text.replace(/^\uFEFF/, '').trim() === '') {
    throw new ConfigError([`${label}: the file is empty — write e.g. {"images": ["alpine:3.20"]}`], { hint: SCHEMA_HINT });
  }
  try {
    return parseJsonLocated(text);
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    throw new ConfigError([`${label}: ${err.message}`], { cause: err.cause, hint: SCHEMA_HINT });
  }
}

/** Relative to the working directory when inside it (`images.json`), else absolute. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}
