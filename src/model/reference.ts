import { isIPv4, isIPv6 } from 'node:net';
import { RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import { characterProblem } from './characters.ts';
import { DIGEST_ALLOWED, DIGEST_PATTERN, digestProblem } from './digest.ts';
import { DOCKER_HUB, DOCKER_HUB_API, LEGACY_DOCKER_HUB, OFFICIAL_PREFIX } from './docker-hub.ts';

// The grammars of image references, repository names, tags and registry hosts (digests: digest.ts,
// platforms: platform.ts). Everything that turns user input or upstream data into a URL or a file
// path goes through these checks first, so `..` or `/abs` can never reach a path.
//
// Parsing follows github.com/distribution/reference (what Docker and containerd use), including
// Docker Hub normalization, so a string in images.json means what it means to `docker pull`.

/** A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. */
export const TAG_PATTERN = '[A-Za-z0-9_][A-Za-z0-9._-]{0,127}';

/** One component of a repository path: lowercase alphanumerics with single separators between them. */
export const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';

/** A repository name: components joined by `/` (length is checked separately). */
export const REPOSITORY_NAME_PATTERN = `${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;

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

export const NAME_TOTAL_LENGTH_MAX = 255;
export const TAG_ALLOWED = `allowed: ${TAG_PATTERN}`;
export const NAME_ALLOWED =
  'allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters';
const tagRe = new RegExp(`^${TAG_PATTERN}$`);
const componentRe = new RegExp(`^${NAME_COMPONENT}$`);
const domainRe = new RegExp(`^${DOMAIN_PATTERN}$`);

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

/**
 * isIPv6, asked only of text with a `:`: its first call compiles a large regular expression
 * (about 10 ms, a twentieth of `registrish serve`'s start-up on its default 127.0.0.1).
 */
const maybeIPv6 = (host: string): boolean => host.includes(':') && isIPv6(host);

/** Is host[:port] a loopback address (localhost, 127.0.0.0/8, ::1)? Those get plain HTTP, as in Docker. */
export function isLoopbackHost(hostport: string): boolean {
  let host = hostport.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0 || !/^(?::[0-9]+)?$/.test(host.slice(end + 1))) return false;
    host = host.slice(1, end);
  } else if (!maybeIPv6(host)) {
    // Not a bare IPv6 address, so at most one ":" and it introduces the port.
    const m = /^([^:]+)(?::[0-9]+)?$/.exec(host);
    if (!m) return false;
    host = m[1]!;
  }
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  if (maybeIPv6(host)) {
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

