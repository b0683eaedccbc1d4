import { isIPv4, isIPv6 } from 'node:net';
import { RegistrishError } from './errors.ts';
import type { Platform, PlatformFilter } from './types.ts';

// The one place that knows the grammars of image references, repository names, tags, digests
// and platforms. Everything that turns user input or upstream data into a URL or a file path
// goes through these checks first, so `..`, `/abs` or `sha256:../../x` can never reach a path.
//
// Parsing follows github.com/distribution/reference (what Docker and containerd use), including
// Docker Hub normalization, so a string in images.json means what it means to `docker pull`.

/** A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. */
export const TAG_PATTERN = '[A-Za-z0-9_][A-Za-z0-9._-]{0,127}';

/** One component of a repository path: lowercase alphanumerics with single separators between them. */
export const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';

/** A repository name: components joined by `/` (length is checked separately). */
export const REPOSITORY_NAME_PATTERN = `${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;

/** Digests we accept: sha256 and sha512, lowercase hex of the exact length. */
export const DIGEST_PATTERN = 'sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}';

/** A registry host: DNS-ish name or bracketed IPv6, optional port. */
export const DOMAIN_PATTERN =
  '(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?';

// A first component Docker reads as a Docker Hub namespace (no `.`, `:` or uppercase).
const NAME_COMPONENT_NO_DOT = '[a-z0-9]+(?:(?:_|__|[-]+)[a-z0-9]+)*';

/**
 * A whole image reference as a single regular expression, with Docker's rule for when the first
 * component is a registry host. Used by images.schema.json (editor feedback); the parser below is
 * the authority and gives the messages. Name length (≤ 255) is not expressed here.
 */
export const REFERENCE_PATTERN =
  `(?![a-f0-9]{64}$)` +
  `(?:${DOMAIN_PATTERN}/${REPOSITORY_NAME_PATTERN}|${NAME_COMPONENT}|${NAME_COMPONENT_NO_DOT}(?:/${NAME_COMPONENT})+)` +
  `(?::${TAG_PATTERN})?(?:@(?:${DIGEST_PATTERN}))?`;

/** `os/arch[/variant]`, lowercase. */
export const PLATFORM_PATTERN = '[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)?';

export const NAME_TOTAL_LENGTH_MAX = 255;
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

export const TAG_ALLOWED = `allowed: ${TAG_PATTERN}`;
export const NAME_ALLOWED =
  'allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters';
export const DIGEST_ALLOWED = 'allowed: "sha256:" followed by 64 lowercase hex digits, or "sha512:" followed by 128';
export const PLATFORM_ALLOWED = 'allowed: os/arch[/variant] in lowercase, e.g. linux/amd64, linux/arm64, linux/arm/v7';

const tagRe = new RegExp(`^${TAG_PATTERN}$`);
const componentRe = new RegExp(`^${NAME_COMPONENT}$`);
const digestRe = new RegExp(`^(?:${DIGEST_PATTERN})$`);
const domainRe = new RegExp(`^${DOMAIN_PATTERN}$`);
const platformPartRe = /^[a-z0-9][a-z0-9._-]*$/;

/** JSON-quotes a value for a message: control characters become visible, long values are cut. */
export function quote(value: unknown): string {
  if (typeof value !== 'string') return String(JSON.stringify(value));
  // Long enough for any digest (sha512 is 135 characters); hostile 10k-character names are cut.
  if (value.length > 140) return `${JSON.stringify(value.slice(0, 100))}… (${value.length} characters)`;
  return JSON.stringify(value);
}

/** Characters no name, tag or host may contain, described for a message; undefined when all are printable ASCII. */
function characterProblem(s: string): string | undefined {
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    const u = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    if (code < 0x20 || code === 0x7f) return `it contains a control character (${u})`;
    if (/\s/u.test(ch)) return `it contains whitespace (${u})`;
    // Lookalikes (Cyrillic "а", full-width "／") must not pass as the ASCII they resemble.
    if (code > 0x7e) return `it contains the non-ASCII character "${ch}" (${u}); only ASCII is allowed`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Tags, names, digests

export function isValidTag(tag: unknown): tag is string {
  return typeof tag === 'string' && tagRe.test(tag);
}

/** Why `tag` is not a valid tag (a short clause), or undefined when it is. */
export function tagProblem(tag: string): string | undefined {
  if (tagRe.test(tag)) return undefined;
  if (tag === '') return 'it is empty';
  const chars = characterProblem(tag);
  if (chars) return chars;
  if (tag.length > 128) return `it is ${tag.length} characters long (at most 128)`;
  if (!/^[A-Za-z0-9_]/.test(tag)) return `it must start with a letter, digit or "_"`;
  const bad = [...tag].find((c) => !/[A-Za-z0-9._-]/.test(c));
  return bad ? `it contains "${bad}"` : 'it does not match the tag grammar';
}

/** Why `name` is not a valid repository name (a short clause), or undefined when it is. */
export function repositoryNameProblem(name: string, maxLength = NAME_TOTAL_LENGTH_MAX): string | undefined {
  if (name === '') return 'it is empty';
  const chars = characterProblem(name);
  if (chars) return chars;
  if (name.includes('\\')) return 'it contains "\\" (components are separated by "/")';
  if (name.startsWith('/')) return 'it starts with "/" (a repository name is not an absolute path)';
  if (name.endsWith('/')) return 'it ends with "/"';
  const components = name.split('/');
  if (components.includes('')) return 'it has an empty component ("//")';
  if (components.some((c) => c === '.' || c === '..')) return 'it has a "." or ".." component';
  if (name.toLowerCase() !== name) return 'it must be lowercase';
  const bad = components.find((c) => !componentRe.test(c));
  if (bad !== undefined) {
    return `its component "${bad}" is not valid`;
  }
  if (name.length > maxLength) return `it is ${name.length} characters long (at most ${maxLength})`;
  return undefined;
}

export function isValidRepositoryName(name: unknown): name is string {
  return typeof name === 'string' && repositoryNameProblem(name) === undefined;
}

/** Why `digest` is not one we accept, or undefined when it is. */
export function digestProblem(digest: unknown): string | undefined {
  if (typeof digest !== 'string') return `it is ${digest === undefined ? 'missing' : `a ${typeof digest}, not a string`}`;
  if (digestRe.test(digest)) return undefined;
  if (digest === '') return 'it is empty';
  const chars = characterProblem(digest);
  if (chars) return chars;
  const colon = digest.indexOf(':');
  if (colon < 0) return 'it has no algorithm (expected "sha256:…")';
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const want = algorithm === 'sha256' ? 64 : algorithm === 'sha512' ? 128 : undefined;
  if (want === undefined) return `the algorithm "${algorithm}" is not supported (only sha256 and sha512)`;
  if (/^[a-fA-F0-9]+$/.test(hex) && hex !== hex.toLowerCase()) return 'its hex digits must be lowercase';
  if (!/^[a-f0-9]*$/.test(hex)) return 'it contains characters other than hex digits';
  return `${algorithm} takes ${want} hex digits, this has ${hex.length}`;
}

export function isValidDigest(digest: unknown): digest is string {
  return typeof digest === 'string' && digestRe.test(digest);
}

/**
 * Throws unless `digest` is a well-formed digest. Call this before a digest becomes part of a
 * file path or URL: it is the guard against `sha256:../../x` coming from an upstream or a layout.
 */
export function assertSafeDigest(digest: unknown, context: string): asserts digest is string {
  const problem = digestProblem(digest);
  if (problem !== undefined) {
    throw new RegistrishError(`${context}: ${quote(digest)} is not a valid digest: ${problem} (${DIGEST_ALLOWED})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Image references

export interface ParsedReference {
  /** Registry host[:port], normalized: `docker.io` for Docker Hub. */
  domain: string;
  /** Repository path on that registry: `library/alpine`. */
  path: string;
  tag?: string;
  digest?: string;
}

/** Why `host` (host[:port]) is not a valid registry host, or undefined when it is. */
export function hostProblem(host: string): string | undefined {
  if (host === '') return 'it is empty';
  const chars = characterProblem(host);
  if (chars) return chars;
  if (domainRe.test(host)) return undefined;
  if (host.includes('/')) return 'it contains "/" (write host or host:port only)';
  if (/^\[[^\]]*\]$/.test(host) || /^\[[^\]]*\]:/.test(host)) {
    return /^\[[a-fA-F0-9:]+\](?::|$)/.test(host)
      ? 'its port must be digits'
      : 'an IPv6 address in brackets may only contain hex digits and ":"';
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && !host.includes('[')) {
    const port = host.slice(colon + 1);
    if (!/^[0-9]+$/.test(port)) return `its port ${quote(port)} must be digits`;
  }
  return 'a host name is made of letters, digits and "-" (not at either end of a label), labels separated by "."';
}

/**
 * Parses an image reference `[host[:port]/]path[:tag][@digest]` the way Docker does:
 * `alpine` → docker.io, `library/alpine`; `index.docker.io` → `docker.io`. Throws a
 * RegistrishError that quotes the input and says what is wrong.
 */
export function parseReference(s: string): ParsedReference {
  const fail: (why: string) => never = (why) => {
    throw new RegistrishError(`${quote(s)} is not a valid image reference: ${why}`);
  };
  if (typeof s !== 'string') fail('it is not a string');
  if (s === '') fail('it is empty');
  const chars = characterProblem(s);
  if (chars) fail(chars);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(s);
  if (scheme) fail(`an image reference has no URL scheme; drop "${scheme[0]}"`);
  // A bare 64-hex string is an image ID, never a name (Docker refuses it too).
  if (/^[a-f0-9]{64}$/.test(s)) fail('a 64-character hex string is an image ID, not a repository name');

  // `@` cannot appear in a name or tag, so the first one starts the digest.
  let rest = s;
  let digest: string | undefined;
  const at = s.indexOf('@');
  if (at >= 0) {
    digest = s.slice(at + 1);
    rest = s.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) fail(`the digest ${quote(digest)} is not valid: ${problem} (${DIGEST_ALLOWED})`);
  }

  // A `:` after the last `/` starts the tag (one before it belongs to host:port).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    const problem = tagProblem(tag);
    if (problem) fail(`the tag ${quote(tag)} is not valid: ${problem} (${TAG_ALLOWED})`);
  }

  if (rest === '') fail('the repository name is empty');
  if (rest.startsWith('/')) fail('it starts with "/" (a repository is not an absolute path)');

  // Docker's rule (distribution/reference splitDockerDomain): the first component is a registry
  // host if it contains "." or ":", is "localhost", or has uppercase (never valid on Docker Hub).
  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
      domain = first;
      path = rest.slice(slash + 1);
      if (domain === LEGACY_DOCKER_HUB) domain = DOCKER_HUB;
      const problem = hostProblem(domain);
      if (problem) fail(`the registry host ${quote(first)} is not valid: ${problem}`);
    }
  }
  // Checked as written, so the message quotes what the user typed (not `library/…`).
  const nameProblem = repositoryNameProblem(path, Infinity);
  if (nameProblem) fail(`the repository path ${quote(path)} is not valid: ${nameProblem} (${NAME_ALLOWED})`);
  if (domain === DOCKER_HUB && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  const full = `${domain}/${path}`;
  if (full.length > NAME_TOTAL_LENGTH_MAX) {
    fail(`the name ${quote(full)} is ${full.length} characters long (at most ${NAME_TOTAL_LENGTH_MAX}, registry host included)`);
  }

  const out: ParsedReference = { domain, path };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** Formats a parsed reference back: `docker.io/library/alpine:3.20@sha256:…`. */
export function formatReference(ref: ParsedReference): string {
  return `${ref.domain}/${ref.path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** host[:port] the registry's HTTP API lives on: Docker Hub's differs from its name. */
export function registryApiHost(domain: string): string {
  return domain === DOCKER_HUB || domain === LEGACY_DOCKER_HUB ? DOCKER_HUB_API : domain;
}

/** Is host[:port] a loopback address (localhost, 127.0.0.0/8, ::1)? Those get plain HTTP, as in Docker. */
export function isLoopbackHost(hostport: string): boolean {
  let host = hostport.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0 || !/^(?::[0-9]+)?$/.test(host.slice(end + 1))) return false;
    host = host.slice(1, end);
  } else if (!isIPv6(host)) {
    // Not a bare IPv6 address, so at most one ":" and it introduces the port.
    const m = /^([^:]+)(?::[0-9]+)?$/.exec(host);
    if (!m) return false;
    host = m[1]!;
  }
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  if (isIPv6(host)) {
    // Let WHATWG URL canonicalize the many spellings of ::1 (0:0:…:1, ::0001, ::ffff:127.0.0.1).
    const canonical = new URL(`http://[${host}]/`).hostname;
    return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
  }
  return false;
}

/** Default repository name on our registry: the source path without its host and Docker Hub's `library/`. */
export function defaultRepositoryName(domain: string, path: string): string {
  if ((domain === DOCKER_HUB || domain === LEGACY_DOCKER_HUB) && path.startsWith(OFFICIAL_PREFIX)) {
    return path.slice(OFFICIAL_PREFIX.length);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// Platforms

/** Why `s` is not an `os/arch[/variant]` platform, or undefined when it is. */
export function platformProblem(s: string): string | undefined {
  if (s === '') return 'it is empty';
  const chars = characterProblem(s);
  if (chars) return chars;
  const parts = s.split('/');
  if (parts.length < 2) return 'it needs at least os/arch';
  if (parts.length > 3) return 'it has more than three parts';
  if (parts.includes('')) return 'it has an empty part';
  if (s.toLowerCase() !== s) return 'it must be lowercase';
  const bad = parts.find((p) => !platformPartRe.test(p));
  if (bad !== undefined) return `its part "${bad}" may only contain lowercase letters, digits, ".", "_" and "-"`;
  return undefined;
}

/** Parses `os/arch[/variant]`, e.g. `linux/arm64` or `linux/arm/v7`. */
export function parsePlatform(s: string): PlatformFilter {
  const problem = platformProblem(s);
  if (problem !== undefined) throw new RegistrishError(`${quote(s)} is not a valid platform: ${problem} (${PLATFORM_ALLOWED})`);
  const [os, architecture, variant] = s.split('/') as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: PlatformFilter): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** containerd's normalizeArch: aliases and default variants, so `arm64` ≡ `arm64/v8`, `arm` ≡ `arm/v7`. */
function normalizeArch(architecture: string, variant: string | undefined): [string, string] {
  const arch = architecture.toLowerCase();
  const v = (variant ?? '').toLowerCase();
  switch (arch) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', v === 'v1' ? '' : v];
    case 'aarch64':
    case 'arm64':
      return ['arm64', v === '8' || v === 'v8' || v === 'v8.0' ? '' : v];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      if (v === '' || v === '7') return ['arm', 'v7'];
      if (v === '5' || v === '6' || v === '8') return ['arm', `v${v}`];
      return ['arm', v];
    default:
      return [arch, v];
  }
}

/** Does an index entry's platform match a filter from images.json (after containerd's normalization)? */
export function platformMatches(filter: PlatformFilter, platform: Platform | PlatformFilter): boolean {
  if (filter.os.toLowerCase() !== platform.os.toLowerCase()) return false;
  const [fa, fv] = normalizeArch(filter.architecture, filter.variant);
  const [pa, pv] = normalizeArch(platform.architecture, platform.variant);
  return fa === pa && fv === pv;
}

/** A canonical key for a platform, equal for platforms that match each other. */
export function platformKey(p: PlatformFilter): string {
  const [arch, variant] = normalizeArch(p.architecture, p.variant);
  return `${p.os.toLowerCase()}/${arch}${variant ? `/${variant}` : ''}`;
}
