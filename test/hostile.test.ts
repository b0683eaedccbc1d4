import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { entriesUnder } from './harness/fs-walk.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildOptions, type BuildSummary } from '../src/build.ts';
import { MAX_INDEX_ENTRIES } from '../src/resolve/plan.ts';
import { diffSnapshots, integrityProblems, snapshotTree, startFaultProxy, type FaultProxy } from './harness/fault-proxy.ts';
import { MT, seedUpstream, type Fixtures } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry, startAuthUpstreams, type AuthUpstreams } from './harness/upstream.ts';
import { formatError } from '../src/util/errors.ts';

// Hostile content and input, through real builds. Digests in manifests (served by a real
// upstream through the fault proxy, or read from an OCI layout) and names/tags in images.json are
// untrusted: only `sha256:[a-f0-9]{64}` may ever become part of a path. Each build runs with its
// cwd in an empty folder deep inside a sandbox, and afterwards nothing in the sandbox outside the
// output and cache folders may have changed; the previous output must be byte-identical.
// Then: index depth and size limits, images.json mistakes, and credentials that never leak.

const EXAMPLE = path.resolve(import.meta.dirname, '..', 'example', 'hello');
const HEX = 'a'.repeat(64);

let storage: string;
let up: UpstreamRegistry;
let proxy: FaultProxy;
let fx: Fixtures;

/** sandbox/deep/er/work (cwd, empty), …/config (images.json, layouts), …/site, …/cache. */
let sandbox: string;
let base: string;
let work: string;
let site: string;
let cache: string;
let previous: Map<string, Buffer>;
const cwd = process.cwd();

beforeAll(async () => {
  storage = makeTempDir('rsh-hostile-up-');
  up = await startRegistry({ storageDir: storage });
  fx = await seedUpstream(up.url);
  proxy = await startFaultProxy({ target: up.url });
  sandbox = makeTempDir('rsh-hostile-');
  base = path.join(sandbox, 'deep', 'er');
  work = path.join(base, 'work');
  site = path.join(base, 'site');
  cache = path.join(base, 'cache');
  await mkdir(work, { recursive: true });
  await mkdir(path.join(base, 'config'), { recursive: true });
  // The previous successful build, which every hostile build must leave untouched.
  await writeFile(path.join(base, 'config', 'images.json'), JSON.stringify({ images: [{ source: `oci:${EXAMPLE}:1.0`, name: 'hello' }] }));
  await buildRegistry(options());
  previous = await snapshotTree(site);
});

afterAll(async () => {
  process.chdir(cwd);
  await proxy?.close();
  await up?.stop();
  removeDir(storage);
  removeDir(sandbox);
});

function options(extra: Partial<BuildOptions> = {}): BuildOptions {
  return {
    images: path.join(base, 'config', 'images.json'),
    outputDir: site,
    cacheDir: cache,
    hosts: ['netlify'],
    imageConcurrency: 2,
    blobConcurrency: 2,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(base, 'none') },
    http: { maxRetries: 1, retryBaseMs: 10, blobRetryDelayMs: 10 },
    ...extra,
  };
}

/** Every path in the sandbox (files, folders, links) outside site/ and cache/, with file bytes. */
async function outside(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const { rel } of await entriesUnder(sandbox)) {
    const top = path.relative(base, path.join(sandbox, rel)).split(path.sep)[0];
    if (top === 'site' || top === 'cache') continue;
    const full = path.join(sandbox, rel);
    const st = await lstat(full);
    out.set(rel, st.isFile() ? createHash('sha256').update(await readFile(full)).digest('hex') : st.isDirectory() ? 'dir' : 'other');
  }
  return out;
}

/**
 * Runs one build that must be refused, from the empty work folder, and checks: the error matches,
 * nothing outside site/ and cache/ changed, site/ is byte-identical, cache/ holds only verified files.
 */
async function refused(images: unknown, expected: RegExp): Promise<string> {
  await writeFile(path.join(base, 'config', 'images.json'), typeof images === 'string' ? images : JSON.stringify(images));
  const before = await outside();
  process.chdir(work);
  let error: unknown;
  try {
    await buildRegistry(options());
  } catch (err) {
    error = err;
  } finally {
    process.chdir(cwd);
  }
  expect(error, 'the build should have been refused').toBeDefined();
  const message = formatError(error);
  if (process.env.SHOW_HOSTILE_MESSAGES) console.log(message.split('\n')[0]);
  expect(message).toMatch(expected);
  expect(await outside()).toEqual(before);
  expect(await readdir(work)).toEqual([]);
  expect(diffSnapshots(previous, await snapshotTree(site))).toEqual([]);
  expect(await integrityProblems(site, cache)).toEqual([]);
  return message;
}

/** A minimal OCI layout in config/<name>: put() stores a blob, tag() writes index.json. */
async function layout(name: string) {
  const dir = path.join(base, 'config', name);
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const put = async (bytes: Buffer | string, mediaType: string) => {
    const b = Buffer.from(bytes);
    const hex = createHash('sha256').update(b).digest('hex');
    await writeFile(path.join(dir, 'blobs', 'sha256', hex), b);
    return { mediaType, digest: `sha256:${hex}`, size: b.length };
  };
  const tag = (refs: Record<string, { mediaType: string; digest: unknown; size: number }>) =>
    writeFile(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: Object.entries(refs).map(([t, d]) => ({ ...d, annotations: { 'org.opencontainers.image.ref.name': t } })),
      }),
    );
  return { dir, put, tag };
}

const image = (config: object, layers: object[]) =>
  JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config, layers });

// ---------------------------------------------------------------------------------------------

/** Digests that must never reach a path (each one a value an upstream or a layout could send). */
const HOSTILE_DIGESTS: unknown[] = [
  'sha256:../../x',
  'sha256:../../../../../../tmp/registrish-pwned',
  '../../x',
  '/etc/passwd',
  'sha256:/etc/passwd',
  '',
  'sha256:',
  `sha256:${'A'.repeat(64)}`,
  `SHA256:${HEX}`,
  `sha256:${HEX.slice(1)}`,
  `sha256:${HEX}0`,
  `sha256:${HEX}/../../x`,
  `sha256:${HEX.slice(2)}..`,
  `sha256:${HEX}\u0000`,
  `sha256:${HEX}\n`,
  `sha256:${HEX.slice(1)}\u0430`,
  'sha256:%2e%2e%2f%2e%2e%2fx',
  'sha256:..\\..\\x',
  `md5:${'a'.repeat(32)}`,
  `sha512:${'a'.repeat(128)}`,
  `sha256:${HEX}:x`,
  42,
  null,
  ['sha256:../x'],
];

describe('hostile digests in manifests never become paths', () => {
  const config = () => {
    const f = fx['oci/single:1.0'];
    const d = f.platforms[0].configDigest;
    return { mediaType: MT.ociConfig, digest: d, size: f.blobSizes[d] };
  };

  it.each(HOSTILE_DIGESTS.map((d) => [JSON.stringify(d), d]))('as a layer served by the upstream: %s', async (_label, digest) => {
    proxy.fault = (c) => {
      if (c.req.method !== 'GET' || !c.url.pathname.endsWith('/manifests/1.0')) return;
      const body = Buffer.from(image(config(), [{ mediaType: MT.ociLayerGzip, digest, size: 10 }]));
      c.send({ status: 200, headers: { 'content-type': MT.ociManifest }, body });
      return true;
    };
    try {
      await refused({ images: [{ source: `${proxy.host}/oci/single:1.0` }] }, /is not a valid digest|digests are not supported|not a valid digest/);
    } finally {
      proxy.fault = undefined;
    }
  });

  it.each(HOSTILE_DIGESTS.map((d) => [JSON.stringify(d), d]))('as an index entry in an OCI layout: %s', async (_label, digest) => {
    const l = await layout('idx');
    const index = await l.put(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [{ mediaType: MT.ociManifest, digest, size: 10, platform: { os: 'linux', architecture: 'amd64' } }] }),
      MT.ociIndex,
    );
    await l.tag({ x: index });
    await refused({ images: [{ source: `oci:${l.dir}:x`, name: 'h' }] }, /is not a valid digest|digests are not supported/);
  });

  it.each(['sha256:../../../x', `sha256:${'F'.repeat(64)}`, '/abs/olute'].map((d) => [d]))('as the tag target in an OCI layout index.json: %s', async (digest) => {
    const l = await layout('top');
    await l.tag({ x: { mediaType: MT.ociManifest, digest, size: 10 } });
    await refused({ images: [{ source: `oci:${l.dir}:x`, name: 'h' }] }, /is not a valid digest/);
  });
});

/** Names and tags that must be refused before anything is written (images.json). */
const HOSTILE_NAMES = ['Upper/Case', '../x', 'a/../../b', '/abs', 'a//b', 'a/', '.', '..', 'a/./b', 'x'.repeat(256), 'a\\b', 'a\u0000b', '\u0430lpine', 'a b', '-a', 'a/.hidden', 'v2/../../etc', ''];
const HOSTILE_TAGS = ['../x', '..', '.', '/abs', 'a/b', '', 'x'.repeat(129), '.hidden', '-x', 'Bad Tag!', 'a\nb', 'sha256:abc', '%2e%2e'];

describe('hostile names and tags in images.json are refused before any file operation', () => {
  it.each(HOSTILE_NAMES.map((n) => [JSON.stringify(n).slice(0, 40), n]))('name %s', async (_label, name) => {
    await refused({ images: [{ source: `oci:${EXAMPLE}:1.0`, name }] }, /images\[0\]\.name: .*(not a valid repository name|must not be empty|empty)/);
  });

  it.each(HOSTILE_TAGS.map((t) => [JSON.stringify(t).slice(0, 40), t]))('tag %s', async (_label, tag) => {
    await refused({ images: [{ source: `oci:${EXAMPLE}:1.0`, name: 'hello', tags: [tag] }] }, /images\[0\]\.tags\[0\]: .*not a valid tag|images\[0\]\.tags\[0\]/);
  });

  it.each(['127.0.0.1:1/a/../b:1', '127.0.0.1:1/Upper:1', '127.0.0.1:1/a:../x', `127.0.0.1:1/a@sha256:${'A'.repeat(64)}`, '127.0.0.1:1/a@sha256:../../x'].map((s) => [s]))(
    'source %s',
    async (source) => {
      await refused({ images: [{ source }] }, /images\[0\]\.source: /);
    },
  );
});

describe('index recursion and size', () => {
  it('an index nested deeper than 4 levels is an error, not a hang', async () => {
    const l = await layout('deep');
    const leafConfig = await l.put('{}', MT.ociConfig);
    let top = await l.put(image(leafConfig, []), MT.ociManifest);
    for (let i = 0; i < 8; i++) {
      top = await l.put(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [top] }), MT.ociIndex);
    }
    await l.tag({ x: top });
    await refused({ images: [{ source: `oci:${l.dir}:x`, name: 'deep' }] }, /manifests nest deeper than 4 levels/);
  });

  it(`an index with more than ${MAX_INDEX_ENTRIES} entries is refused without fetching them`, async () => {
    const l = await layout('wide');
    const leafConfig = await l.put('{}', MT.ociConfig);
    const leaf = await l.put(image(leafConfig, []), MT.ociManifest);
    const many = Array.from({ length: 5000 }, (_, i) => ({ ...leaf, platform: { os: 'linux', architecture: `arch${i}` } }));
    const index = await l.put(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: many }), MT.ociIndex);
    await l.tag({ x: index });
    await refused({ images: [{ source: `oci:${l.dir}:x`, name: 'wide' }] }, /lists 5000 manifests, more than the 1024/);
  });

  it('index entries that are not objects are an error, not a crash', async () => {
    const l = await layout('junk');
    const index = await l.put(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [null, 7] }), MT.ociIndex);
    await l.tag({ x: index });
    await refused({ images: [{ source: `oci:${l.dir}:x`, name: 'junk' }] }, /not a descriptor object/);
  });

  it('a manifest with 3000 layers builds, with bounded memory', async () => {
    const l = await layout('layers');
    const cfg = await l.put('{"architecture":"amd64","os":"linux"}', MT.ociConfig);
    const layers = [];
    for (let i = 0; i < 3000; i++) layers.push(await l.put(`layer ${i}\n`, MT.ociLayerGzip));
    const m = await l.put(image(cfg, layers), MT.ociManifest);
    await l.tag({ x: m });
    const out = path.join(base, 'site-layers');
    await writeFile(path.join(base, 'config', 'images.json'), JSON.stringify({ images: [{ source: `oci:${l.dir}:x`, name: 'layers' }] }));
    const rss0 = process.memoryUsage().rss;
    const summary: BuildSummary = await buildRegistry(options({ outputDir: out, blobConcurrency: 8 }));
    expect(summary.blobs).toBe(3001);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 * 1024 * 1024);
    expect(await integrityProblems(out, cache)).toEqual([]);
  });
});

describe('images.json mistakes, through the build API', () => {
  it('malformed JSON reports line and column', async () => {
    await refused('{\n  "images": [\n    "alpine:3.20",\n  ]\n}\n', /invalid JSON at line 3, column \d+/);
  });

  it('an unknown key is an error with a suggestion', async () => {
    await refused({ images: [{ source: `oci:${EXAMPLE}:1.0`, name: 'hello', tag: ['x'] }] }, /images\[0\]: unknown key "tag" — did you mean "tags"\?/);
  });

  it('two entries publishing the same name:tag is an error naming both', async () => {
    await refused(
      { images: [{ source: `oci:${EXAMPLE}:1.0`, name: 'hello', tags: ['x'] }, { source: `oci:${EXAMPLE}:1.0`, name: 'hello', tags: ['y', 'x'] }] },
      /images\[0\] and images\[1\] both publish "hello:x"/,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('credentials never leak', () => {
  const BASIC = { user: 'alice', pass: 'basic-Secret-7731' };
  const TOKEN = { user: 'bob', pass: 'token-Secret-2208' };
  const WRONG = 'wrong-Secret-4490';
  let basic: UpstreamRegistry;
  let token: UpstreamRegistry;
  let tokProxy: FaultProxy;
  let auth: AuthUpstreams;

  beforeAll(async () => {
    auth = await startAuthUpstreams(storage, BASIC, TOKEN);
    ({ basic, token, tokProxy } = auth);
  });
  afterAll(() => auth?.stop());

  it('in logs, errors, output and cache: htpasswd and token upstreams, good and bad passwords, faults', async () => {
    const texts: string[] = [];
    const dir = path.join(base, 'creds');
    const run = async (host: string, cred: string, fault?: FaultProxy['fault']) => {
      const logs: string[] = [];
      tokProxy.fault = fault;
      await writeFile(
        path.join(base, 'config', 'images.json'),
        JSON.stringify({ images: [{ source: `${host}/oci/multi:1.0` }, { source: `${host}/docker/single:v1` }] }),
      );
      try {
        const s = await buildRegistry(
          options({
            outputDir: path.join(dir, 'site'),
            cacheDir: path.join(dir, 'cache'),
            logger: { info: (m) => logs.push(m), warn: (m) => logs.push(m) },
            env: { REGISTRISH_AUTH: JSON.stringify({ [host]: cred }), DOCKER_CONFIG: path.join(base, 'none') },
          }),
        );
        texts.push(s.line);
        return 'ok';
      } catch (err) {
        let e: unknown = err;
        texts.push(formatError(err));
        while (e instanceof Error) {
          texts.push(e.message, String(e.stack), String((e as { hint?: string }).hint ?? ''));
          e = e.cause;
        }
        return 'failed';
      } finally {
        tokProxy.fault = undefined;
        texts.push(...logs);
      }
    };
    expect(await run(basic.host, `${BASIC.user}:${BASIC.pass}`)).toBe('ok');
    expect(await run(basic.host, `${BASIC.user}:${WRONG}`)).toBe('failed');
    expect(await run(tokProxy.host, `${TOKEN.user}:${TOKEN.pass}`)).toBe('ok');
    expect(await run(tokProxy.host, `${TOKEN.user}:${WRONG}`)).toBe('failed');
    // Token issued, then the registry fails every blob for good (with the token echoed back).
    await removeDirContents(dir);
    expect(
      await run(tokProxy.host, `${TOKEN.user}:${TOKEN.pass}`, (c) => {
        if (!c.url.pathname.includes('/blobs/')) return;
        const auth = c.req.headers.authorization ?? '';
        c.send({ status: 503, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`refused ${auth}`) });
        return true;
      }),
    ).toBe('failed');
    // …and a token endpoint that echoes the credentials it was sent in its error.
    expect(
      await run(tokProxy.host, `${TOKEN.user}:${TOKEN.pass}`, (c) => {
        if (!c.url.pathname.endsWith('/token')) return;
        c.send({ status: 401, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ error: `bad ${c.req.headers.authorization}` })) });
        return true;
      }),
    ).toBe('failed');

    const tokens = token.issuedTokens!();
    expect(tokens.length).toBeGreaterThan(0);
    const secrets = [
      BASIC.pass,
      TOKEN.pass,
      WRONG,
      ...[`${BASIC.user}:${BASIC.pass}`, `${BASIC.user}:${WRONG}`, `${TOKEN.user}:${TOKEN.pass}`, `${TOKEN.user}:${WRONG}`].map((s) => Buffer.from(s).toString('base64')),
      ...tokens,
      ...tokens.map((t) => t.split('.')[2]),
    ];
    const files = [...(await snapshotTree(dir)).entries()].map(([f, b]) => `${f}\n${b.toString('latin1')}`);
    for (const s of secrets) {
      for (const t of texts) expect(t.includes(s), `a secret in: ${t.slice(0, 300)}`).toBe(false);
      for (const f of files) expect(f.includes(s), `a secret in ${f.split('\n')[0]}`).toBe(false);
    }
    expect(texts.join('\n')).toMatch(/refused the credentials|credentials .* were refused/);
  });
});

async function removeDirContents(dir: string): Promise<void> {
  const { rm } = await import('node:fs/promises');
  await rm(dir, { recursive: true, force: true });
}
