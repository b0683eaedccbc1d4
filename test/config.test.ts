import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig, parseConfigText, RESERVED_NAME_COMPONENTS } from '../src/config/config.ts';
import { RegistrishError } from '../src/util/errors.ts';
import { DOMAIN_PATTERN, REFERENCE_PATTERN, REPOSITORY_NAME_PATTERN, TAG_PATTERN } from '../src/model/reference.ts';
import { describeSource } from '../src/sources/kinds.ts';
import { locateJsonError } from '../src/config/json.ts';
import { splitOciReference, type OciLayoutRef } from '../src/sources/oci-layout.ts';
import type { RegistryRef } from '../src/sources/registry/kind.ts';
import { PLATFORM_PATTERN } from '../src/model/platform.ts';

// Messages name the file relative to the working directory: a file right here reads `images.json`.
const FILE = path.join(process.cwd(), 'images.json');
const DIR = path.dirname(FILE);
const HEX = 'a'.repeat(64);
const D = `sha256:${HEX}`;
const TAG_RULE = '(allowed: [A-Za-z0-9_][A-Za-z0-9._-]{0,127})';

const parse = (data: unknown, env: NodeJS.ProcessEnv = {}) =>
  parseConfigText(typeof data === 'string' ? data : JSON.stringify(data, null, 2), FILE, { env });

/** The problem lines of a config that must fail. */
function problems(data: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parse(data, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).toBeInstanceOf(RegistrishError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('the example from the docs', () => {
  const example = {
    $schema: './images.schema.json',
    images: [
      'alpine:3.20',
      { source: 'docker.io/library/nginx', tags: ['1.27', 'stable'], platforms: ['linux/amd64', 'linux/arm64'] },
      { source: 'ghcr.io/org/tool:v2', name: 'tools/tool' },
      { source: `registry.example.com/team/app@${D}`, name: 'app', tags: ['pinned'] },
      { source: 'oci:example/hello:1.0', name: 'hello', tags: ['1.0', 'latest'] },
    ],
    insecureRegistries: ['registry.lan:5000'],
  };

  test('parses into ImageSpecs', () => {
    const config = parse(example);
    expect(config.file).toBe(FILE);
    expect(config.insecureRegistries).toEqual(['registry.lan:5000']);
    const hub = { kind: 'registry', registry: 'docker.io', apiHost: 'registry-1.docker.io', insecure: false } as const;
    const platforms = [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ];
    expect(config.images).toEqual([
      { index: 0, name: 'alpine', tags: ['3.20'], source: { ...hub, repository: 'library/alpine', tag: '3.20', original: 'alpine:3.20' } },
      // An unpinned source mirrors: one spec per tag, each fetching the tag of the same name.
      {
        index: 1,
        name: 'nginx',
        tags: ['1.27'],
        platforms,
        source: { ...hub, repository: 'library/nginx', tag: '1.27', original: 'docker.io/library/nginx' },
      },
      {
        index: 1,
        name: 'nginx',
        tags: ['stable'],
        platforms,
        source: { ...hub, repository: 'library/nginx', tag: 'stable', original: 'docker.io/library/nginx' },
      },
      {
        index: 2,
        name: 'tools/tool',
        tags: ['v2'],
        source: {
          kind: 'registry',
          registry: 'ghcr.io',
          apiHost: 'ghcr.io',
          insecure: false,
          repository: 'org/tool',
          tag: 'v2',
          original: 'ghcr.io/org/tool:v2',
        },
      },
      {
        index: 3,
        name: 'app',
        tags: ['pinned'],
        source: {
          kind: 'registry',
          registry: 'registry.example.com',
          apiHost: 'registry.example.com',
          insecure: false,
          repository: 'team/app',
          digest: D,
          original: `registry.example.com/team/app@${D}`,
        },
      },
      // A pinned source: one image under every tag.
      {
        index: 4,
        name: 'hello',
        tags: ['1.0', 'latest'],
        source: { kind: 'oci-layout', dir: path.join(DIR, 'example/hello'), tag: '1.0', original: 'oci:example/hello:1.0' },
      },
    ]);
  });

  test('the repository images.json is valid', async () => {
    const config = await loadConfig('images.json', { env: {} });
    expect(config.images.length).toBeGreaterThan(0);
  });

  test('describeSource', () => {
    const lines = parse(example).images.map((spec) => describeSource(spec.source));
    expect(lines).toEqual([
      'docker.io/library/alpine:3.20',
      'docker.io/library/nginx:1.27',
      'docker.io/library/nginx:stable',
      'ghcr.io/org/tool:v2',
      `registry.example.com/team/app@${D}`,
      'oci:example/hello:1.0',
    ]);
    expect(describeSource(parse({ images: ['oci:/abs/layouts/hello'] }).images[0]!.source)).toBe('oci:/abs/layouts/hello:latest');
  });
});

describe('defaults', () => {
  test('shorthand string ≡ {"source": …}', () => {
    expect(parse({ images: ['ghcr.io/a/b:1'] })).toEqual(parse({ images: [{ source: 'ghcr.io/a/b:1' }] }));
  });

  test('name: the source path without host and without library/', () => {
    const names = parse({
      images: ['alpine', 'docker.io/library/nginx', 'docker.io/bitnami/redis', '127.0.0.1:5000/a/b', 'ghcr.io/library/x', 'oci:layouts/hello-world'],
    }).images.map((s) => s.name);
    expect(names).toEqual(['alpine', 'nginx', 'bitnami/redis', 'a/b', 'library/x', 'hello-world']);
  });

  test('tags: the source tag, else latest (digest-only sources too)', () => {
    const tags = parse({ images: ['a:1.0', 'b', `c@${D}`, `d:2@${D}`, 'oci:e', 'oci:f:3'] }).images.map((s) => s.tags);
    expect(tags).toEqual([['1.0'], ['latest'], ['latest'], ['2'], ['latest'], ['3']]);
    // An unpinned source fetches `latest` explicitly.
    expect(parse({ images: ['b'] }).images[0]!.source.tag).toBe('latest');
    // A pinned digest is fetched by digest; a tag written beside it is kept for messages.
    const pinned = parse({ images: [`d:2@${D}`] }).images[0]!.source;
    expect([pinned.tag, pinned.digest]).toEqual(['2', D]);
  });

  test('platforms: undefined unless given', () => {
    expect(parse({ images: ['a'] }).images[0]!.platforms).toBeUndefined();
    expect(parse({ images: [{ source: 'a', platforms: ['linux/arm/v7'] }] }).images[0]!.platforms).toEqual([
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ]);
  });

  test('insecure: loopback registries and insecureRegistries use HTTP, everything else HTTPS', () => {
    const config = parse(
      {
        images: [
          'localhost:5000/a',
          '127.0.0.1:5000/b',
          '[::1]:5000/c',
          'registry.lan:5000/d',
          'registry.lan/e',
          'REGISTRY.LAN:5000/f',
          'ghcr.io/g/g',
          'mirror.ci:5000/h',
          'alpine',
        ],
        insecureRegistries: ['registry.lan:5000'],
      },
      { REGISTRISH_INSECURE_REGISTRIES: 'mirror.ci:5000, other.ci' },
    );
    const insecure = config.images.map((s) => s.source.kind === 'registry' && (s.source as RegistryRef).insecure);
    expect(insecure).toEqual([true, true, true, true, false, true, false, true, false]);
    expect(config.insecureRegistries).toEqual(['registry.lan:5000', 'mirror.ci:5000', 'other.ci']);
  });
});

describe('oci: sources', () => {
  test('paths are resolved against the directory of images.json', () => {
    const file = path.join(os.tmpdir(), 'site', 'images.json');
    const config = parseConfigText(JSON.stringify({ images: ['oci:example/hello:1.0', 'oci:../shared/img', 'oci:/abs/x@' + D] }), file, {
      env: {},
    });
    const dirs = config.images.map((s) => (s.source.kind === 'oci-layout' ? (s.source as OciLayoutRef).dir : ''));
    expect(dirs).toEqual([path.join(os.tmpdir(), 'site/example/hello'), path.join(os.tmpdir(), 'shared/img'), '/abs/x']);
    expect(config.file).toBe(file);
  });

  test('splitOciReference: last ":" is a tag unless it holds a path separator; "@algo:" starts a digest', () => {
    expect(splitOciReference('oci:example/hello:1.0')).toEqual({ dir: 'example/hello', tag: '1.0' });
    expect(splitOciReference('oci:example/hello')).toEqual({ dir: 'example/hello' });
    expect(splitOciReference(`oci:x@${D}`)).toEqual({ dir: 'x', digest: D });
    expect(splitOciReference(`oci:x:t@${D}`)).toEqual({ dir: 'x', tag: 't', digest: D });
    expect(splitOciReference('oci:my:dir/')).toEqual({ dir: 'my:dir/' });
    expect(splitOciReference('oci:my:dir/:1.0')).toEqual({ dir: 'my:dir/', tag: '1.0' });
    expect(splitOciReference('oci:C:\\layouts\\hello')).toEqual({ dir: 'C:\\layouts\\hello' });
    expect(splitOciReference('oci:@scope/pkg:2')).toEqual({ dir: '@scope/pkg', tag: '2' });
    expect(() => splitOciReference('oci:x:Bad!')).toThrow('"oci:x:Bad!" is not a valid OCI layout reference: the tag "Bad!" is not valid');
    expect(() => splitOciReference('oci:x@sha256:../../y')).toThrow('the digest "sha256:../../y" is not valid');
    expect(() => splitOciReference('oci:')).toThrow('the directory is empty');
    expect(() => splitOciReference('oci::1.0')).toThrow('the directory is empty');
    expect(() => splitOciReference('oci:x:')).toThrow('the tag "" is not valid: it is empty');
  });

  test('a directory name that is not a valid repository name needs "name"', () => {
    expect(problems({ images: ['oci:layouts/My Image:1.0'] })).toEqual([
      'images.json: images[0]: cannot use the directory name "My Image" as the repository name: it contains whitespace (U+0020) ' +
        '(allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters) — add "name", e.g. "name": "my-image"',
    ]);
    expect(parse({ images: [{ source: 'oci:layouts/My Image:1.0', name: 'my-image' }] }).images[0]!.name).toBe('my-image');
  });
});

describe('error messages', () => {
  test('a bad tag', () => {
    expect(problems({ images: ['a', 'b', 'c', { source: 'd', tags: ['ok', 'Bad Tag!'] }] })).toEqual([
      `images.json: images[3].tags[1]: "Bad Tag!" is not a valid tag ${TAG_RULE}`,
    ]);
    expect(problems({ images: [{ source: 'd', tags: ['', 'x'.repeat(129), 'tab\t'] }] })).toEqual([
      `images.json: images[0].tags[0]: "" is not a valid tag ${TAG_RULE}: it is empty`,
      `images.json: images[0].tags[1]: "${'x'.repeat(129)}" is not a valid tag ${TAG_RULE}: it is 129 characters long (at most 128)`,
      `images.json: images[0].tags[2]: "tab\\t" is not a valid tag ${TAG_RULE}: it contains a control character (U+0009)`,
    ]);
  });

  test('unknown keys, with suggestions', () => {
    expect(problems({ images: [{ source: 'a', tag: '1' }] })).toEqual(['images.json: images[0]: unknown key "tag" — did you mean "tags"?']);
    expect(problems({ image: ['a'], images: ['a'] })).toEqual(['images.json: unknown key "image" — did you mean "images"?']);
    expect(problems({ images: [{ source: 'a', platfroms: ['linux/amd64'], nmae: 'x', Tags: ['1'] }] })).toEqual([
      'images.json: images[0]: unknown key "platfroms" — did you mean "platforms"?',
      'images.json: images[0]: unknown key "nmae" — did you mean "name"?',
      'images.json: images[0]: unknown key "Tags" — did you mean "tags"?',
    ]);
    expect(problems({ images: [{ image: 'a' }] })).toEqual([
      'images.json: images[0]: unknown key "image" — did you mean "source"?',
      'images.json: images[0]: missing "source": the image to publish, e.g. "source": "alpine:3.20"',
    ]);
    expect(problems({ images: ['a'], insecure: ['x'] })).toEqual(['images.json: unknown key "insecure" — did you mean "insecureRegistries"?']);
    expect(problems({ images: ['a'], zzz: 1 })).toEqual([
      'images.json: unknown key "zzz" (allowed: "$schema", "images", "insecureRegistries", "attachments", "verify")',
    ]);
  });

  test('wrong types say what is expected', () => {
    expect(problems({ images: [{ source: 'a', tags: '1.0' }] })).toEqual([
      'images.json: images[0].tags: expected an array of tags, e.g. ["1.0", "latest"], got a string ("1.0") — write ["1.0"]',
    ]);
    expect(problems({ images: [{ source: 'a', tags: [1] }] })).toEqual(['images.json: images[0].tags[0]: expected a string, got a number (1)']);
    expect(problems({ images: [{ source: 42 }] })).toEqual([
      'images.json: images[0].source: expected a string (an image reference like "alpine:3.20" or "oci:DIR:TAG"), got a number (42)',
    ]);
    expect(problems({ images: [{ source: 'a', name: ['x'] }] })).toEqual([
      'images.json: images[0].name: expected a string (the repository name on your registry, e.g. "tools/app"), got an array',
    ]);
    expect(problems({ images: [null, true] })).toEqual([
      'images.json: images[0]: expected an image reference string or an object with "source", got null',
      'images.json: images[1]: expected an image reference string or an object with "source", got a boolean (true)',
    ]);
    expect(problems({ images: { source: 'a' } })).toEqual(['images.json: images: expected an array of images, e.g. ["alpine:3.20"], got an object']);
    expect(problems({ images: ['a'], insecureRegistries: 'x:5000' })).toEqual([
      'images.json: insecureRegistries: expected an array of host[:port] strings, e.g. ["registry.lan:5000"], got a string ("x:5000")',
    ]);
    expect(problems({ $schema: 1, images: ['a'] })).toEqual([
      'images.json: $schema: expected a string (the path or URL of images.schema.json), got a number (1)',
    ]);
    expect(problems(['alpine'])).toEqual(['images.json: expected an object like {"images": ["alpine:3.20"]}, got an array — wrap the list: {"images": [...]}']);
  });

  test('missing and empty lists', () => {
    expect(problems({})).toEqual(['images.json: missing "images": list the images to publish, e.g. "images": ["alpine:3.20"]']);
    expect(problems({ images: [] })).toEqual(['images.json: images: the list is empty — add at least one image to publish, e.g. ["alpine:3.20"]']);
    expect(problems({ images: [{ source: 'a', tags: [], platforms: [] }] })).toEqual([
      'images.json: images[0].tags: the list is empty — add at least one, or leave "tags" out for the default',
      'images.json: images[0].platforms: the list is empty — add at least one, or leave "platforms" out for the default',
    ]);
  });

  test('bad sources quote the input and say why', () => {
    expect(problems({ images: ['Alpine', { source: 'a//b' }, `x@sha256:${'A'.repeat(64)}`] })).toEqual([
      'images.json: images[0]: "Alpine" is not a valid image reference: the repository path "Alpine" is not valid: it must be lowercase ' +
        '(allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters)',
      'images.json: images[1].source: "a//b" is not a valid image reference: the repository path "a//b" is not valid: it has an empty component ("//") ' +
        '(allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters)',
      `images.json: images[2]: "x@sha256:${'A'.repeat(64)}" is not a valid image reference: the digest "sha256:${'A'.repeat(64)}" is not valid: ` +
        'its hex digits must be lowercase (allowed: "sha256:" followed by 64 lowercase hex digits, or "sha512:" followed by 128)',
    ]);
  });

  test('names: grammar and collisions with the static layout', () => {
    const lines = problems({
      images: [
        { source: 'a', name: 'Tools/Tool' },
        { source: 'a', name: '/abs' },
        { source: 'a', name: 'a/../b' },
        { source: 'a', name: 'x'.repeat(256) },
        { source: 'a', name: 'x/tags' },
        { source: 'a', name: 'manifests' },
        { source: 'a', name: 'a/blobs/b' },
        'ghcr.io/org/tags',
      ],
    });
    expect(lines[0]).toBe(
      'images.json: images[0].name: "Tools/Tool" is not a valid repository name: it must be lowercase (allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters)',
    );
    expect(lines[1]).toMatch(/^images\.json: images\[1\]\.name: "\/abs" is not a valid repository name: it starts with "\/"/);
    expect(lines[2]).toMatch(/^images\.json: images\[2\]\.name: "a\/\.\.\/b" is not a valid repository name: it has a "\." or "\.\." component/);
    expect(lines[3]).toBe(
      `images.json: images[3].name: "${'x'.repeat(100)}"… (256 characters) is not a valid repository name: it is 256 characters long (at most 255) (allowed: lowercase letters and digits, with ".", "_", "__" or "-" between them; components joined by "/"; at most 255 characters)`,
    );
    expect(lines[4]).toBe(
      'images.json: images[4].name: "x/tags" is not a valid repository name: its component "tags" would collide with the registry\'s own paths in the static file layout ' +
        '(/v2/<name>/manifests/…, /v2/<name>/blobs/…, /v2/<name>/tags/list); components may not be "manifests", "blobs", "tags", "referrers", "_catalog"',
    );
    expect(lines[5]).toMatch(/^images\.json: images\[5\]\.name: "manifests" .* its component "manifests" would collide/);
    expect(lines[6]).toMatch(/^images\.json: images\[6\]\.name: "a\/blobs\/b" .* its component "blobs" would collide/);
    expect(lines[7]).toMatch(/^images\.json: images\[7\]: cannot use the source's repository "org\/tags" as the repository name: its component "tags" would collide .* — add "name"$/);
    expect(lines).toHaveLength(8);
  });

  test('platforms', () => {
    expect(problems({ images: [{ source: 'a', platforms: ['linux', 'linux/arm64', 'linux/arm64/v8', 'Linux/amd64', 'linux/arm64'] }] })).toEqual([
      'images.json: images[0].platforms[0]: "linux" is not a valid platform: it needs at least os/arch (allowed: os/arch[/variant] in lowercase, e.g. linux/amd64, linux/arm64, linux/arm/v7)',
      'images.json: images[0].platforms[2]: "linux/arm64/v8" is the same platform as platforms[1]',
      'images.json: images[0].platforms[3]: "Linux/amd64" is not a valid platform: it must be lowercase (allowed: os/arch[/variant] in lowercase, e.g. linux/amd64, linux/arm64, linux/arm/v7)',
      'images.json: images[0].platforms[4]: "linux/arm64" is the same platform as platforms[1]',
    ]);
  });

  test('insecureRegistries entries are host[:port]', () => {
    expect(problems({ images: ['a'], insecureRegistries: ['http://r.lan', 'r.lan:port', 'r.lan/x', 5, 'ok.lan:5000', '[::1]:5000'] })).toEqual([
      'images.json: insecureRegistries[0]: "http://r.lan" is not a host[:port]: drop "http://"',
      'images.json: insecureRegistries[1]: "r.lan:port" is not a valid host[:port]: its port "port" must be digits',
      'images.json: insecureRegistries[2]: "r.lan/x" is not a valid host[:port]: it contains "/" (write host or host:port only)',
      'images.json: insecureRegistries[3]: expected a host[:port] string, e.g. "registry.lan:5000", got a number (5)',
    ]);
    expect(problems({ images: ['a'] }, { REGISTRISH_INSECURE_REGISTRIES: 'good.lan,bad_host' })).toEqual([
      'REGISTRISH_INSECURE_REGISTRIES: "bad_host" is not a valid host[:port]: a host name is made of letters, digits and "-" (not at either end of a label), labels separated by "."',
    ]);
  });

  test('two entries publishing the same name:tag', () => {
    expect(problems({ images: ['alpine:3.19', 'alpine:3.20', 'busybox', 'nginx', { source: 'ghcr.io/x/alpine:3.20', name: 'alpine' }] })).toEqual([
      'images.json: images[1] and images[4] both publish "alpine:3.20"',
    ]);
    // A default tag collides as well: `alpine` publishes alpine:latest.
    expect(problems({ images: ['alpine', { source: 'alpine:edge', tags: ['latest'] }] })).toEqual([
      'images.json: images[0] and images[1] both publish "alpine:latest"',
    ]);
    // Same tag, different names: fine.
    expect(() => parse({ images: ['alpine:3.20', { source: 'alpine:3.20', name: 'mirror/alpine' }] })).not.toThrow();
  });

  test('tags of one name that differ only in case', () => {
    expect(problems({ images: [{ source: 'a', tags: ['v1', 'V1'] }] })).toEqual([
      'images.json: images[0].tags[1]: "V1" and tags[0] "v1" differ only in case; static hosts such as Netlify match paths case-insensitively, so one would overwrite the other',
    ]);
    expect(problems({ images: ['app:v1', { source: 'app:other', tags: ['V1'] }] })).toEqual([
      'images.json: images[0] and images[1] publish "app:v1" and "app:V1", which differ only in case; static hosts such as Netlify match paths case-insensitively, so one would overwrite the other',
    ]);
    expect(problems({ images: [{ source: 'a', tags: ['x', 'x'] }] })).toEqual(['images.json: images[0].tags[1]: "x" is listed twice (also tags[0])']);
    // Other names may use either case.
    expect(() => parse({ images: ['app:v1', { source: 'app:V1', name: 'other' }] })).not.toThrow();
  });

  test('all problems are reported at once, in one error', () => {
    let error: unknown;
    try {
      parse({ images: ['Bad', { source: 'a', tags: ['!'] }, { source: 'b', tag: 'x' }] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RegistrishError);
    const e = error as ConfigError;
    expect(e.problems).toHaveLength(3);
    expect(e.message.split('\n')[0]).toBe('3 problems:');
    expect(e.message.split('\n').slice(1)).toEqual(e.problems.map((p) => `  ${p}`));
    expect(e.hint).toMatch(/\$schema/);
  });

  test('files outside the working directory are named by absolute path', () => {
    const file = path.join(os.tmpdir(), 'elsewhere', 'images.json');
    expect(() => parseConfigText('{"images": ["A"]}', file, { env: {} })).toThrow(`${file}: images[0]: "A" is not a valid image reference`);
  });
});

describe('malformed JSON', () => {
  const cases: Array<[string, string, string]> = [
    ['{\n  "images": [\n    "alpine",\n  ]\n}', 'line 3, column 13', 'trailing comma before "]" (JSON allows none)'],
    ['{\n  "images": [\n    "alpine"\n    "b"\n  ]\n}', 'line 4, column 5', 'expected "," or "]" after an array element, found "\\""'],
    ['{\n  "images": ["a"],\n}', 'line 2, column 18', 'trailing comma before "}" (JSON allows none)'],
    ['{\n  images: ["a"]\n}', 'line 2, column 3', 'expected a property name in double quotes, found "i"'],
    ["{\n  'images': ['a']\n}", 'line 2, column 3', 'property names need double quotes, not single'],
    ['{ "images": ["a"] // comment\n}', 'line 1, column 19', 'comments are not allowed in JSON'],
    ['{ "images": ["a\nb"] }', 'line 1, column 16', 'line break inside a string (write \\n, or close the string with ")'],
    ['{ "images": ["a"]', 'line 1, column 18', 'expected "," or "}" after a property value, found the end of the file'],
    ['{ "images": ["a"] }}', 'line 1, column 20', 'unexpected "}" after the end of the JSON value'],
    ['{ "images" ["a"] }', 'line 1, column 12', 'expected ":" after the property name, found "["'],
    ['{ "images": [tru] }', 'line 1, column 14', 'expected a value, found "t"'],
    ['{ "images": ["\\x"] }', 'line 1, column 15', 'invalid escape "\\\\x" in a string'],
    ['\r\n{\r\n  "images": [,]\r\n}', 'line 3, column 14', 'expected a value, found ","'],
  ];
  test.each(cases)('%j → %s', (text, where, reason) => {
    expect(() => parseConfigText(text, FILE, { env: {} })).toThrow(`images.json: invalid JSON at ${where}: ${reason}`);
  });

  test('the message shows the line with a caret', () => {
    expect(() => parseConfigText('{\n  "images": [\n    "alpine",\n  ]\n}', FILE, { env: {} })).toThrow(
      'images.json: invalid JSON at line 3, column 13: trailing comma before "]" (JSON allows none)\n      "alpine",\n              ^',
    );
  });

  test('a property given twice in one object is reported where the second one is (JSON.parse would keep only the last)', () => {
    const text = '{\n  "images": [\n    { "source": "alpine:3.20", "name": "a", "source": "nginx" }\n  ]\n}';
    expect(() => parseConfigText(text, FILE, { env: {} })).toThrow(
      'images.json: at line 3, column 45: duplicate property "source" in one object (only the last one would count)\n' +
        '      { "source": "alpine:3.20", "name": "a", "source": "nginx" }\n' +
        '                                              ^',
    );
    // The same name in different objects is fine; names are compared after unescaping.
    expect(() => parseConfigText('{"images": [{"source": "a"}, {"source": "b"}]}', FILE, { env: {} })).not.toThrow();
    expect(locateJsonError('{"a": 1, "\\\\u0061": 2}')).toBeUndefined(); // a backslash, then u0061: not "a"
    expect(locateJsonError('{"a": 1, "\\u0061": 2}')).toEqual({ offset: 9, reason: 'duplicate property "a" in one object (only the last one would count)' });
  });

  test('a file that is not JSON is reported for that first, even after a duplicate; deep nesting is an error, not a crash', () => {
    expect(() => parseConfigText('{"images": [], "images": [,]}', FILE, { env: {} })).toThrow(
      'images.json: invalid JSON at line 1, column 27: expected a value, found ","',
    );
    const deep = `{"images": [], "x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    expect(() => parseConfigText(deep, FILE, { env: {} })).toThrow('images.json: at line 1, column 220: nested deeper than 200 levels');
  });

  test('the locator agrees with JSON.parse on what is valid', () => {
    const valid = ['{}', '[]', '0', '-1.5e+3', '"\\u00e9\\n"', '{"a":[1,{"b":null}],"c":true}', ' \n\t[ ] ', '"é"'];
    for (const t of valid) {
      expect(() => JSON.parse(t)).not.toThrow();
      expect(locateJsonError(t), t).toBeUndefined();
    }
    const invalid = ['', '{', '[1,]', '01', '1.', '.5', '+1', '"\t"', 'nul', '{"a" 1}', '[1 2]', 'NaN', '{"a":1,}', '"\\u12"'];
    for (const t of invalid) {
      expect(() => JSON.parse(t), t).toThrow();
      expect(locateJsonError(t), t).toBeDefined();
    }
  });

  test('empty file and BOM', () => {
    expect(() => parseConfigText('  \n', FILE, { env: {} })).toThrow('images.json: the file is empty — write e.g. {"images": ["alpine:3.20"]}');
    expect(parseConfigText('\ufeff{"images": ["a"]}', FILE, { env: {} }).images).toHaveLength(1);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'registrish-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('reads the file; oci paths are relative to it', async () => {
    const file = path.join(dir, 'images.json');
    await writeFile(file, JSON.stringify({ images: ['oci:layouts/hello:1.0'] }));
    const config = await loadConfig(file, { env: {} });
    expect(config.file).toBe(file);
    expect(config.images[0]!.source).toMatchObject({ kind: 'oci-layout', dir: path.join(dir, 'layouts/hello'), tag: '1.0' });
  });

  test('a missing file says where and how to create one', async () => {
    const file = path.join(dir, 'nope', 'images.json');
    const error = await loadConfig(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistrishError);
    expect((error as Error).message).toBe(
      `no images.json found at ${file}: create it with the images to publish, e.g. {"images": ["alpine:3.20"]}`,
    );
  });

  test('a directory is not a file', async () => {
    await expect(loadConfig(dir)).rejects.toThrow(`${dir} is a directory, not an images.json file`);
  });
});

// ---------------------------------------------------------------------------------------------
// images.schema.json must say the same as the validator.

describe('images.schema.json', () => {
  const schema = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'images.schema.json'), 'utf8'));
  const ajv = new Ajv({ allErrors: true });
  const validate = ajv.compile(schema);

  test('its patterns are the grammars of src/reference.ts', () => {
    const defs = schema.definitions;
    expect(defs.tag.pattern).toBe(`^${TAG_PATTERN}$`);
    expect(defs.name.pattern).toBe(`^(?!(?:.*/)?(?:${RESERVED_NAME_COMPONENTS.join('|')})(?:/|$))${REPOSITORY_NAME_PATTERN}$`);
    expect(defs.source.pattern).toBe(`^(?:oci:.+|docker-archive:.+|oci-archive:.+|${REFERENCE_PATTERN})$`);
    expect(defs.image.properties.platforms.items.pattern).toBe(`^${PLATFORM_PATTERN}$`);
    expect(schema.properties.insecureRegistries.items.pattern).toBe(`^${DOMAIN_PATTERN}$`);
  });

  test('every property has a description and examples', () => {
    const walk = (node: unknown, at: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.properties) {
        for (const [key, value] of Object.entries(n.properties as Record<string, Record<string, unknown>>)) {
          if (value.$ref) continue;
          expect(value.description, `${at}.${key}`).toBeTypeOf('string');
          expect(value.examples, `${at}.${key}`).toBeInstanceOf(Array);
        }
      }
      for (const [k, v] of Object.entries(n)) walk(v, `${at}.${k}`);
    };
    walk(schema, '');
    for (const [key, def] of Object.entries(schema.definitions as Record<string, Record<string, unknown>>)) {
      expect(def.description, key).toBeTypeOf('string');
      expect(def.examples, key).toBeInstanceOf(Array);
    }
  });

  const valid: unknown[] = [
    { images: ['alpine'] },
    { $schema: './images.schema.json', images: ['alpine:3.20', 'docker.io/library/nginx:1.27', `ghcr.io/o/t@${D}`, `a:1@${D}`] },
    { images: [{ source: 'localhost:5000/a/b' }, '[::1]:5000/x', 'MyHost/app', 'foo_bar/baz'] },
    { images: [{ source: 'docker.io/library/nginx', tags: ['1.27', 'stable'], platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'] }] },
    { images: [{ source: 'ghcr.io/org/tool:v2', name: 'tools/tool' }], insecureRegistries: ['registry.lan:5000', '10.0.0.1', '[fe80::1]:5000'] },
    { images: [{ source: 'oci:example/hello:1.0', name: 'hello', tags: ['1.0', 'latest', '_x', 'T'.repeat(128)] }] },
    { images: ['oci:/abs/dir', `oci:x@${D}`], insecureRegistries: [] },
    { images: [{ source: 'a', name: 'a.b/c_d/e__f/g--h' }] },
    { images: [{ source: 'a', attachments: false }, 'b'], attachments: true },
    { images: [{ source: 'docker.io/library/nginx', tags: { allow: ['1\\.2[67]\\..*'], deny: ['.*-alpine.*'], semver: '>=1.26 <2', newest: 3 } }] },
  ];
  test.each(valid.map((v) => [JSON.stringify(v).slice(0, 100), v]))('accepted by both: %s', (_label, config) => {
    expect(() => parse(config)).not.toThrow();
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  const invalid: unknown[] = [
    [],
    'alpine',
    {},
    { images: [] },
    { images: 'alpine' },
    { images: ['alpine'], extra: 1 },
    { images: ['alpine'], $schema: 5 },
    { images: ['alpine'], insecureRegistries: 'x' },
    { images: ['alpine'], insecureRegistries: ['http://x'] },
    { images: ['alpine'], insecureRegistries: ['x:port'] },
    { images: ['alpine'], insecureRegistries: [5] },
    { images: [5] },
    { images: [null] },
    { images: [['alpine']] },
    { images: [{}] },
    { images: [{ name: 'x' }] },
    { images: [{ source: 5 }] },
    { images: [{ source: 'a', tag: 'x' }] },
    { images: [{ source: 'a', tags: 'x' }] },
    { images: [{ source: 'a', tags: [] }] },
    { images: [{ source: 'a', tags: ['Bad Tag!'] }] },
    { images: [{ source: 'a', tags: ['.x'] }] },
    { images: [{ source: 'a', tags: ['t'.repeat(129)] }] },
    { images: [{ source: 'a', tags: ['x', 'x'] }] },
    { images: [{ source: 'a', tags: [1] }] },
    { images: [{ source: 'a', platforms: [] }] },
    { images: [{ source: 'a', platforms: 'linux/amd64' }] },
    { images: [{ source: 'a', platforms: ['linux'] }] },
    { images: [{ source: 'a', platforms: ['Linux/amd64'] }] },
    { images: [{ source: 'a', platforms: ['linux/arm/v7/x'] }] },
    { images: [{ source: 'a', platforms: ['linux/amd64', 'linux/amd64'] }] },
    { images: [{ source: 'a', name: 5 }] },
    { images: [{ source: 'a', name: 'Upper' }] },
    { images: [{ source: 'a', name: '/abs' }] },
    { images: [{ source: 'a', name: 'a//b' }] },
    { images: [{ source: 'a', name: 'a/../b' }] },
    { images: [{ source: 'a', name: 'x'.repeat(256) }] },
    { images: [{ source: 'a', name: 'x/tags' }] },
    { images: [{ source: 'a', name: 'manifests/x' }] },
    { images: [{ source: 'a', name: 'blobs' }] },
    { images: [{ source: 'a', name: 'x/referrers' }] },
    { images: ['a'], attachments: 'yes' },
    { images: [{ source: 'a', attachments: 1 }] },
    { images: ['a'], verify: false },
    { images: [{ source: 'a', verify: {} }] },
    { images: [{ source: 'a', verify: { key: [] } }] },
    { images: [{ source: 'a', verify: true }] },
    { images: [{ source: 'a', tags: {} }] },
    { images: [{ source: 'a', tags: { newest: 0 } }] },
    { images: [{ source: 'a', tags: { semver: 3 } }] },
    { images: [{ source: 'a', tags: { allow: [] } }] },
    { images: [{ source: 'a', tags: { latest: 3 } }] },
    { images: ['Alpine'] },
    { images: ['a//b'] },
    { images: ['/abs'] },
    { images: [`a@sha256:${'A'.repeat(64)}`] },
    { images: ['a@sha256:../../x'] },
    { images: ['a:bad tag'] },
    { images: ['a_b.com/x'] },
    { images: ['https://ghcr.io/x'] },
    { images: [HEX] },
    { images: [''] },
    { images: ['oci:'] },
  ];
  test.each(invalid.map((v) => [JSON.stringify(v).slice(0, 100), v]))('rejected by both: %s', (_label, config) => {
    expect(() => parse(config)).toThrow(RegistrishError);
    expect(validate(config)).toBe(false);
  });
});

describe('attachments and verify', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rsh-verify-cfg-'));
    const { generateKeyPairSync } = await import('node:crypto');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(path.join(dir, 'cosign.pub'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(path.join(dir, 'cosign.key'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const ed = generateKeyPairSync('ed25519');
    await writeFile(path.join(dir, 'ed.pub'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
    const dh = generateKeyPairSync('x25519');
    await writeFile(path.join(dir, 'x25519.pub'), dh.publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(path.join(dir, 'junk.pub'), 'not a key\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const at = (config: unknown) => parseConfigText(JSON.stringify(config), path.join(dir, 'images.json'), { env: {} });
  // Messages name the file as given; here that is an absolute path: compare what follows it.
  const problemsAt = (config: unknown): readonly string[] => {
    try {
      at(config);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => p.replace(`${path.join(dir, 'images.json')}:`, 'images.json:'));
      throw e;
    }
    return [];
  };

  test('the top level sets both for every entry; an entry overrides', () => {
    const config = at({
      attachments: true,
      verify: { key: 'cosign.pub' },
      images: ['ghcr.io/org/a:1', { source: 'ghcr.io/org/b:1', attachments: false, verify: false }, { source: 'oci:x:1', verify: { key: ['ed.pub', 'cosign.pub'], identity: 'ghcr.io/org/x' } }],
    });
    const [a, b, x] = config.images;
    expect(a!.attachments).toBe(true);
    expect(a!.verify!.keys.map((k) => [k.file, k.key.asymmetricKeyType])).toEqual([['cosign.pub', 'ec']]);
    // Signatures name the source repository unless images.json says otherwise.
    expect(a!.verify!.identity).toBe('ghcr.io/org/a');
    expect(b!.attachments).toBeUndefined();
    expect(b!.verify).toBeUndefined();
    expect(x!.verify!.keys.map((k) => k.key.asymmetricKeyType)).toEqual(['ed25519', 'ec']);
    expect(x!.verify!.identity).toBe('ghcr.io/org/x');
    // An OCI layout has no repository of its own: no identity unless given.
    expect(at({ images: [{ source: 'oci:x:1', verify: { key: 'cosign.pub' } }] }).images[0]!.verify!.identity).toBeUndefined();
  });

  test('bad values name the field and say what to do; a private key is refused without echoing it', () => {
    expect(problemsAt({ images: ['a'], attachments: 'yes' })).toEqual(['images.json: attachments: expected true or false, got a string ("yes")']);
    expect(problemsAt({ images: [{ source: 'a', verify: { key: 'missing.pub' } }] })).toEqual([
      'images.json: images[0].verify.key: cannot read "missing.pub" (ENOENT): give the public key cosign wrote (cosign.pub), relative to images.json',
    ]);
    const priv = problemsAt({ images: [{ source: 'a', verify: { key: 'cosign.key' } }] });
    expect(priv).toEqual([expect.stringContaining('images[0].verify.key: "cosign.key" holds a private key; give the public one')]);
    expect(priv.join('')).not.toContain('BEGIN');
    expect(problemsAt({ images: [{ source: 'a', verify: { key: ['cosign.pub', 'junk.pub'] } }] })).toEqual([
      'images.json: images[0].verify.key[1]: "junk.pub" is not a PEM public key (expected "-----BEGIN PUBLIC KEY-----", as cosign writes cosign.pub)',
    ]);
    expect(problemsAt({ images: [{ source: 'a', verify: { key: 'x25519.pub' } }] })).toEqual([
      'images.json: images[0].verify.key: "x25519.pub" is a x25519 key; cosign signs with ECDSA, RSA or Ed25519 keys',
    ]);
    expect(problemsAt({ images: ['a'], verify: { keys: 'cosign.pub' } })).toEqual([
      'images.json: verify: unknown key "keys" — did you mean "key"?',
      'images.json: verify: missing "key": the cosign public key file to trust, e.g. "key": "cosign.pub"',
    ]);
    expect(problemsAt({ images: ['a'], verify: false })).toEqual(['images.json: verify: expected an object like {"key": "cosign.pub"}, got a boolean (false)']);
    expect(problemsAt({ images: [{ source: 'a', name: 'x/referrers' }] })[0]).toContain('its component "referrers" would collide');
  });
});

// ---------------------------------------------------------------------------------------------
// Image archives: docker-archive:FILE[:NAME:TAG|:@INDEX] and oci-archive:FILE[:NAME], as skopeo names them.

describe('archive sources', () => {
  const schema = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'images.schema.json'), 'utf8'));
  const validate = new Ajv({ allErrors: true }).compile(schema);
  const source = (s: string) => parse({ images: [s] }).images[0]!;

  test('docker-archive: the path ends at the first ":", then a name:tag (normalized as docker reads it) or an index', () => {
    expect(source('docker-archive:images/app.tar')).toEqual({
      index: 0,
      name: 'app',
      tags: ['latest'],
      source: { kind: 'docker-archive', file: path.join(DIR, 'images/app.tar'), tag: 'latest', original: 'docker-archive:images/app.tar' },
    });
    expect(source('docker-archive:/abs/all.tar.gz:registry.example.com/team/app:1.4')).toEqual({
      index: 0,
      name: 'team/app',
      tags: ['1.4'],
      source: {
        kind: 'docker-archive',
        file: '/abs/all.tar.gz',
        image: 'registry.example.com/team/app:1.4',
        tag: '1.4',
        original: 'docker-archive:/abs/all.tar.gz:registry.example.com/team/app:1.4',
      },
    });
    expect(source('docker-archive:x.tar:alpine').source).toMatchObject({ image: 'docker.io/library/alpine:latest', tag: 'latest' });
    expect(source('docker-archive:x.tar:alpine').name).toBe('alpine');
    expect(source('docker-archive:all.tgz:@2')).toMatchObject({ name: 'all', tags: ['latest'], source: { index: 2 } });
    // An archive without a reference publishes its one image under every tag listed.
    expect(parse({ images: [{ source: 'docker-archive:x.tar', tags: ['1', '2'] }] }).images.map((i) => [i.tags, i.source.tag])).toEqual([
      [['1'], '1'],
      [['2'], '2'],
    ]);
    expect(describeSource(source('docker-archive:x.tar:@2').source)).toBe('docker-archive:x.tar:@2');
  });

  test('oci-archive: NAME is the ref.name annotation, a tag (skopeo) or a whole image name (podman)', () => {
    expect(source('oci-archive:x.tar').source).toEqual({ kind: 'oci-archive', file: path.join(DIR, 'x.tar'), tag: 'latest', original: 'oci-archive:x.tar' });
    expect(source('oci-archive:x.tar:1.0')).toMatchObject({ name: 'x', tags: ['1.0'], source: { refName: '1.0', tag: '1.0' } });
    expect(source('oci-archive:x.tar:localhost/app:2')).toMatchObject({ name: 'app', tags: ['2'], source: { refName: 'localhost/app:2', tag: '2' } });
    expect(describeSource(source('oci-archive:x.tar:localhost/app:2').source)).toBe('oci-archive:x.tar:localhost/app:2');
  });

  test('mistakes name the entry and say what to write', () => {
    const docker = '(write docker-archive:PATH, docker-archive:PATH:NAME:TAG or docker-archive:PATH:@INDEX)';
    expect(problems({ images: ['docker-archive:', `docker-archive:x.tar:a@${D}`, 'docker-archive:x.tar:Bad Name', 'docker-archive:x.tar:@x'] })).toEqual([
      `images.json: images[0]: "docker-archive:" is not a valid docker-archive reference: the archive path is empty ${docker}`,
      `images.json: images[1]: "docker-archive:x.tar:a@${D}" is not a valid docker-archive reference: an image in an archive is named by NAME:TAG, not by digest ${docker}`,
      `images.json: images[2]: "docker-archive:x.tar:Bad Name" is not a valid docker-archive reference: "Bad Name" is not a valid image reference: it contains whitespace (U+0020) ${docker}`,
      `images.json: images[3]: "docker-archive:x.tar:@x" is not a valid docker-archive reference: "@x" is not an image index (@0, @1, …) ${docker}`,
    ]);
    expect(problems({ images: ['oci-archive::1.0', 'oci-archive:x.tar:bad name!'] })).toEqual([
      'images.json: images[0]: "oci-archive::1.0" is not a valid oci-archive reference: the archive path is empty (write oci-archive:PATH or oci-archive:PATH:NAME)',
      'images.json: images[1]: "oci-archive:x.tar:bad name!" is not a valid oci-archive reference: "bad name!" is not a valid image name (write oci-archive:PATH or oci-archive:PATH:NAME)',
    ]);
    expect(problems({ images: ['docker-archive:exports/My App.tar'] })[0]).toMatch(
      /^images\.json: images\[0\]: cannot use the archive's file name "My App" as the repository name: it contains whitespace .* — add "name", e.g. "name": "my-app"$/,
    );
  });

  test.each([['docker-archive:x.tar'], ['docker-archive:/abs/x.tar.gz:ghcr.io/o/app:1'], ['docker-archive:x.tar:@0'], ['oci-archive:x.tar'], ['oci-archive:x.tar:localhost/app:2']])(
    'the schema accepts what the parser accepts: %s',
    (s) => {
      expect(() => parse({ images: [s] })).not.toThrow();
      expect(validate({ images: [s, { source: s, name: 'n' }] }), JSON.stringify(validate.errors)).toBe(true);
    },
  );

  test.each([['docker-archive:'], ['oci-archive:']])('both refuse %s', (s) => {
    expect(() => parse({ images: [s] })).toThrow();
    expect(validate({ images: [s] })).toBe(false);
  });
});
