import { describe, expect, test } from 'vitest';
import { RegistrishError } from '../src/util/errors.ts';
import { defaultRepositoryName, formatReference, isLoopbackHost, isValidRepositoryName, isValidTag, parseReference, registryApiHost, REFERENCE_PATTERN } from '../src/model/reference.ts';
import { assertSafeDigest, isValidDigest } from '../src/model/digest.ts';
import { formatPlatform, parsePlatform, platformMatches } from '../src/model/platform.ts';

const HEX = 'a'.repeat(64);
const D = `sha256:${HEX}`;

describe('parseReference', () => {
  const table: Array<[string, { domain: string; path: string; tag?: string; digest?: string }]> = [
    ['alpine', { domain: 'docker.io', path: 'library/alpine' }],
    ['alpine:3.20', { domain: 'docker.io', path: 'library/alpine', tag: '3.20' }],
    ['docker.io/alpine', { domain: 'docker.io', path: 'library/alpine' }],
    ['docker.io/library/alpine:latest', { domain: 'docker.io', path: 'library/alpine', tag: 'latest' }],
    ['index.docker.io/library/alpine', { domain: 'docker.io', path: 'library/alpine' }],
    ['index.docker.io/nginx', { domain: 'docker.io', path: 'library/nginx' }],
    ['bitnami/redis:7.2', { domain: 'docker.io', path: 'bitnami/redis', tag: '7.2' }],
    ['docker.io/bitnami/redis', { domain: 'docker.io', path: 'bitnami/redis' }],
    ['ghcr.io/org/tool:v2', { domain: 'ghcr.io', path: 'org/tool', tag: 'v2' }],
    ['ghcr.io/org/sub/tool', { domain: 'ghcr.io', path: 'org/sub/tool' }],
    ['localhost/app', { domain: 'localhost', path: 'app' }],
    ['localhost:5000/a/b:t', { domain: 'localhost:5000', path: 'a/b', tag: 't' }],
    ['127.0.0.1:5000/a/b', { domain: '127.0.0.1:5000', path: 'a/b' }],
    ['registry.lan:5000/team/app:1.0', { domain: 'registry.lan:5000', path: 'team/app', tag: '1.0' }],
    ['myhost:5000/app', { domain: 'myhost:5000', path: 'app' }],
    ['[::1]:5000/foo', { domain: '[::1]:5000', path: 'foo' }],
    ['[::1]/foo:bar', { domain: '[::1]', path: 'foo', tag: 'bar' }],
    ['[2001:db8::1]:443/x/y', { domain: '[2001:db8::1]:443', path: 'x/y' }],
    [`alpine@${D}`, { domain: 'docker.io', path: 'library/alpine', digest: D }],
    [`alpine:3.20@${D}`, { domain: 'docker.io', path: 'library/alpine', tag: '3.20', digest: D }],
    [`registry.example.com/team/app@${D}`, { domain: 'registry.example.com', path: 'team/app', digest: D }],
    [`x.io/a@sha512:${'b'.repeat(128)}`, { domain: 'x.io', path: 'a', digest: `sha512:${'b'.repeat(128)}` }],
    // Docker reads a bare `name:port` as name + tag (its own FIXME), and so do we.
    ['localhost:5000', { domain: 'docker.io', path: 'library/localhost', tag: '5000' }],
    // Separators inside components.
    ['a.b_c__d--e', { domain: 'docker.io', path: 'library/a.b_c__d--e' }],
    ['my-registry.example.com/f-g', { domain: 'my-registry.example.com', path: 'f-g' }],
    ['foo_bar/baz', { domain: 'docker.io', path: 'foo_bar/baz' }],
    ['foo__bar---baz', { domain: 'docker.io', path: 'library/foo__bar---baz' }],
    // Docker treats an uppercase first component as a host (it can never be a Hub namespace).
    ['MyHost/app', { domain: 'MyHost', path: 'app' }],
    ['tag_start:_x', { domain: 'docker.io', path: 'library/tag_start', tag: '_x' }],
    [`a:${'T'.repeat(128)}`, { domain: 'docker.io', path: 'library/a', tag: 'T'.repeat(128) }],
  ];
  test.each(table)('%s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  test('formatReference writes the normalized form back', () => {
    expect(formatReference(parseReference('alpine:3.20'))).toBe('docker.io/library/alpine:3.20');
    expect(formatReference(parseReference(`ghcr.io/o/t:v@${D}`))).toBe(`ghcr.io/o/t:v@${D}`);
  });

  test('names up to 255 characters (host included) are accepted, longer are not', () => {
    const path = `x/${'a'.repeat(255 - 'ghcr.io/x/'.length)}`;
    expect(parseReference(`ghcr.io/${path}`).path).toBe(path);
    expect(() => parseReference(`ghcr.io/${path}b`)).toThrow(/256 characters long \(at most 255, registry host included\)/);
    // Docker Hub normalization counts: `docker.io/library/` is part of the name.
    expect(() => parseReference('a'.repeat(240))).toThrow(/at most 255/);
  });

  const hostile: string[] = [
    '',
    ' ',
    'Alpine',
    'ALPINE:3.20',
    'library/Alpine',
    'docker.io/Library/alpine',
    'ghcr.io/Org/tool',
    '..',
    '../etc/passwd',
    'a/../b',
    'a/./b',
    'a/..',
    '/abs',
    '/abs/path:tag',
    'a//b',
    'a/',
    '/',
    'ghcr.io/',
    'ghcr.io//x',
    '-a',
    'a-',
    'a.',
    '.a',
    'a..b',
    'a___b',
    'sha256:../../x',
    `alpine@sha256:../../x`,
    `alpine@sha256:${'A'.repeat(64)}`,
    `alpine@sha256:${'a'.repeat(63)}`,
    `alpine@sha256:${'a'.repeat(65)}`,
    `alpine@md5:${'a'.repeat(32)}`,
    'alpine@',
    `alpine@${HEX}`,
    `alpine@@${D}`,
    `alpine@${D}@${D}`,
    'alpine:',
    'alpine:.tag',
    'alpine:-tag',
    'alpine:bad tag',
    'alpine:tag!',
    `alpine:${'t'.repeat(129)}`,
    'alpine:3.20:extra',
    'a\0b',
    'alpine\0:3.20',
    'alpine\n',
    '\talpine',
    'al pine',
    '%2e%2e',
    '%2e%2e/%2e%2e/etc',
    'a%2fb',
    'a\\b',
    '..\\..\\windows',
    'аlpine', // Cyrillic а
    'alpine：3.20', // full-width colon
    'ghcr.io／x', // full-width solidus
    'alpine\u200b', // zero-width space
    'alpine\u00a0', // no-break space
    'https://ghcr.io/org/tool',
    'docker://alpine',
    'ex:ample/x',
    'host:/x',
    'a_b.com/x',
    '-host.com/x',
    '[zz]/x',
    '[::1/x',
    HEX,
    `${'a'.repeat(300)}`,
    'foo/bar baz',
    'foo/bar?x=1',
    'foo/bar#frag',
    'foo/*',
  ];
  test('rejects at least 30 hostile values', () => expect(hostile.length).toBeGreaterThanOrEqual(30));
  test.each(hostile.map((h) => [JSON.stringify(h), h]))('rejects %s', (_label, input) => {
    let error: unknown;
    try {
      parseReference(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RegistrishError);
    const message = (error as Error).message;
    // The message quotes the input (JSON-escaped, so NULs and newlines are visible) and says what is wrong.
    expect(message.startsWith(`${JSON.stringify(input.length > 140 ? input.slice(0, 100) : input)}`)).toBe(true);
    expect(message).toMatch(/ is not a valid image reference: \S/);
  });

  test('messages say what is wrong and what is allowed', () => {
    expect(() => parseReference('library/Alpine')).toThrow(
      '"library/Alpine" is not a valid image reference: the repository path "library/Alpine" is not valid: it must be lowercase (allowed: lowercase letters and digits',
    );
    expect(() => parseReference('a//b')).toThrow('it has an empty component ("//")');
    expect(() => parseReference('a/../b')).toThrow('it has a "." or ".." component');
    expect(() => parseReference('/abs')).toThrow('"/abs" is not a valid image reference: it starts with "/"');
    expect(() => parseReference('alpine:tag!')).toThrow(
      '"alpine:tag!" is not a valid image reference: the tag "tag!" is not valid: it contains "!" (allowed: [A-Za-z0-9_][A-Za-z0-9._-]{0,127})',
    );
    expect(() => parseReference(`alpine@sha256:${'A'.repeat(64)}`)).toThrow('its hex digits must be lowercase');
    expect(() => parseReference('аlpine')).toThrow('non-ASCII character "а" (U+0430)');
    expect(() => parseReference('a\0b')).toThrow('"a\\u0000b" is not a valid image reference: it contains a control character (U+0000)');
    expect(() => parseReference('https://ghcr.io/x')).toThrow('drop "https://"');
    expect(() => parseReference(HEX)).toThrow('image ID');
  });

  test('REFERENCE_PATTERN (used by the schema) agrees with the parser', () => {
    const re = new RegExp(`^(?:${REFERENCE_PATTERN})$`, 'u');
    for (const [input] of table) expect(re.test(input), input).toBe(true);
    // The pattern does not count length; every other hostile value must fail it.
    for (const input of hostile.filter((h) => h.length <= 255)) expect(re.test(input), JSON.stringify(input)).toBe(false);
  });
});

describe('tags, names, digests', () => {
  test('isValidTag', () => {
    for (const t of ['latest', '3.20', 'v1.2.3-rc1', '_x', 'A', '0', 'a'.repeat(128), 'UPPER_case.ok-1']) expect(isValidTag(t), t).toBe(true);
    for (const t of ['', '.x', '-x', 'a b', 'a/b', 'a:b', 'a@b', 'a'.repeat(129), 'ä', 'a\0', 42, undefined]) {
      expect(isValidTag(t), String(t)).toBe(false);
    }
  });

  test('isValidRepositoryName', () => {
    for (const n of ['a', 'alpine', 'tools/tool', 'a.b/c_d/e__f/g-h', 'a--b', 'x'.repeat(255)]) expect(isValidRepositoryName(n), n).toBe(true);
    for (const n of ['', 'A', 'a/B', '/a', 'a/', 'a//b', '..', 'a/../b', 'a..b', 'a\\b', '_a', 'a_', 'a___b', 'x'.repeat(256), 'a b', 7]) {
      expect(isValidRepositoryName(n), String(n)).toBe(false);
    }
  });

  test('isValidDigest accepts only sha256/sha512 in lowercase hex of the right length', () => {
    expect(isValidDigest(D)).toBe(true);
    expect(isValidDigest(`sha512:${'0'.repeat(128)}`)).toBe(true);
    for (const d of [
      '',
      HEX,
      'sha256:',
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(63)}`,
      `sha256:${'a'.repeat(65)}`,
      `sha512:${'a'.repeat(64)}`,
      `SHA256:${HEX}`,
      `md5:${'a'.repeat(32)}`,
      'sha256:../../x',
      `sha256:${HEX}/../x`,
      `sha256:${HEX}\n`,
      ` sha256:${HEX}`,
      undefined,
      null,
      42,
    ]) {
      expect(isValidDigest(d), JSON.stringify(d)).toBe(false);
    }
  });

  test('assertSafeDigest throws a RegistrishError naming the context', () => {
    expect(() => assertSafeDigest(D, 'x')).not.toThrow();
    expect(() => assertSafeDigest('sha256:../../etc/passwd', 'oci:example/hello')).toThrow(
      'oci:example/hello: "sha256:../../etc/passwd" is not a valid digest: it contains characters other than hex digits (allowed: "sha256:" followed by 64 lowercase hex digits, or "sha512:" followed by 128)',
    );
    expect(() => assertSafeDigest(undefined, 'index.json')).toThrow('index.json: undefined is not a valid digest: it is missing');
    expect(() => assertSafeDigest(`sha1:${'a'.repeat(40)}`, 'c')).toThrow('the algorithm "sha1" is not supported');
    expect(() => assertSafeDigest('x', 'c')).toThrow(RegistrishError);
  });
});

describe('registries', () => {
  test('registryApiHost', () => {
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('ghcr.io')).toBe('ghcr.io');
    expect(registryApiHost('localhost:5000')).toBe('localhost:5000');
  });

  test('isLoopbackHost', () => {
    for (const h of [
      'localhost',
      'localhost:5000',
      'LOCALHOST:5000',
      '127.0.0.1',
      '127.0.0.1:5000',
      '127.255.3.4:80',
      '::1',
      '[::1]',
      '[::1]:5000',
      '[0:0:0:0:0:0:0:1]:5000',
      '::ffff:127.0.0.1',
    ]) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of [
      'example.com',
      'localhost.example.com',
      'mylocalhost',
      '128.0.0.1',
      '10.0.0.1:5000',
      '127.0.0.1.nip.io',
      '[::2]',
      '::',
      '[::1',
      '[::1]x',
      'localhost:abc',
      '',
    ]) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });

  test('defaultRepositoryName', () => {
    const name = (s: string) => {
      const r = parseReference(s);
      return defaultRepositoryName(r.domain, r.path);
    };
    expect(name('alpine')).toBe('alpine');
    expect(name('docker.io/library/nginx')).toBe('nginx');
    expect(name('docker.io/bitnami/redis')).toBe('bitnami/redis');
    expect(name('127.0.0.1:5000/a/b')).toBe('a/b');
    expect(name('ghcr.io/library/x')).toBe('library/x'); // only Docker Hub's library/ is implicit
    expect(name('ghcr.io/org/tool:v2')).toBe('org/tool');
  });
});

describe('platforms', () => {
  test('parsePlatform and formatPlatform', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('windows/amd64')).toEqual({ os: 'windows', architecture: 'amd64' });
    expect(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
    expect(formatPlatform({ os: 'linux', architecture: 's390x' })).toBe('linux/s390x');
  });

  test.each(['', 'linux', 'linux/', '/amd64', 'linux//v7', 'linux/arm/v7/x', 'Linux/amd64', 'linux/AMD64', 'linux/amd 64', 'linux/amd64\n', 'linux\\amd64'])(
    'parsePlatform rejects %j',
    (s) => {
      expect(() => parsePlatform(s)).toThrow(RegistrishError);
      expect(() => parsePlatform(s)).toThrow(/is not a valid platform: .*\(allowed: os\/arch\[\/variant\]/);
    },
  );

  test('platformMatches normalizes like containerd', () => {
    const m = (filter: string, os: string, architecture: string, variant?: string) =>
      platformMatches(parsePlatform(filter), variant === undefined ? { os, architecture } : { os, architecture, variant });
    expect(m('linux/amd64', 'linux', 'amd64')).toBe(true);
    expect(m('linux/amd64', 'linux', 'amd64', 'v1')).toBe(true);
    expect(m('linux/amd64', 'linux', 'amd64', 'v3')).toBe(false);
    expect(m('linux/amd64', 'windows', 'amd64')).toBe(false);
    expect(m('linux/amd64', 'linux', 'x86_64')).toBe(true);
    expect(m('linux/arm64', 'linux', 'arm64', 'v8')).toBe(true);
    expect(m('linux/arm64/v8', 'linux', 'arm64')).toBe(true);
    expect(m('linux/arm64', 'linux', 'aarch64')).toBe(true);
    expect(m('linux/arm64', 'linux', 'arm64', 'v9')).toBe(false);
    expect(m('linux/arm', 'linux', 'arm', 'v7')).toBe(true);
    expect(m('linux/arm/v7', 'linux', 'arm')).toBe(true);
    expect(m('linux/arm', 'linux', 'arm', 'v6')).toBe(false);
    expect(m('linux/arm/v6', 'linux', 'arm', 'v6')).toBe(true);
    expect(m('linux/arm/v6', 'linux', 'arm', 'v7')).toBe(false);
    expect(m('linux/386', 'linux', 'i386')).toBe(true);
    expect(m('linux/arm64', 'linux', 'amd64')).toBe(false);
  });
});
