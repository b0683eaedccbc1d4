import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageSpec } from '../src/config/types.ts';
import { verifyImage } from '../src/resolve/verify.ts';
import { formatError } from '../src/util/errors.ts';
import {
  cosignSignatureManifest,
  digestTag,
  keyPair,
  pushManifest,
  sign,
  simpleSigningPayload,
  type KeyPair,
  type SignatureLayer,
} from './harness/attachments.ts';
import { testBuild } from './harness/build.ts';
import { snapshotTree } from './harness/fs-walk.ts';
import { buildManifest, makeLayer, pushImage, sha256, type BuiltImage } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The `verify` gate: an image is published only when a cosign signature by a trusted key signs the
// very digest its tag points at, for its own repository. Checked against signatures made by the real
// cosign (test/fixtures/cosign, see NOTICE.md) and, end to end, against a real upstream registry
// holding signatures laid out as cosign lays them out, with keys generated here.

const FIXTURES = path.join(import.meta.dirname, 'fixtures/cosign');

function fixture(name: string, signatureFile = 'signature.b64') {
  const dir = path.join(FIXTURES, name);
  const payload = readFileSync(path.join(dir, 'payload.json'));
  const claims = JSON.parse(payload.toString('utf8'));
  return {
    key: createPublicKey(readFileSync(path.join(dir, 'key.pub'), 'utf8')),
    payload,
    signature: readFileSync(path.join(dir, signatureFile), 'utf8'),
    digest: claims.critical.image['docker-manifest-digest'] as string,
    identity: claims.critical.identity['docker-reference'] as string,
  };
}

/** verifyImage over a `.sig` manifest holding these layers, payloads served from memory. */
function verifyWith(layers: SignatureLayer[], opts: { subject: string; keys: ImageSpec['verify'] }) {
  const sig = cosignSignatureManifest(layers);
  const spec: ImageSpec = { index: 0, source: { kind: 'registry', original: 'example/app' }, name: 'app', tags: ['1.0'], verify: opts.keys };
  return verifyImage({
    subject: opts.subject,
    tag: '1.0',
    spec,
    context: 'images[0] (example/app → app)',
    signature: { digest: sig.digest, bytes: sig.bytes },
    readPayload: async (d) => sig.blobs.get(d.digest)!,
  });
}

describe('signatures made by the real cosign', () => {
  it.each([
    ['cimage-cosign-valid-ecdsa', 'signature.b64'],
    ['cimage-cosign-valid-ecdsa', 'signature-2.b64'],
    ['sigstore-rs-busybox-ecdsa', 'signature.b64'],
    ['cimage-cosign-byopki-rsa4096', 'signature.b64'],
  ])('%s (%s) verifies, with its identity', async (name, file) => {
    const f = fixture(name, file);
    await expect(
      verifyWith([{ payload: f.payload, signature: f.signature }], { subject: f.digest, keys: { keys: [{ file: 'cosign.pub', key: f.key }], identity: f.identity } }),
    ).resolves.toBe('cosign.pub');
  });

  it('the signed digest is the sha256 of the image manifest the fixture keeps', () => {
    const f = fixture('cimage-cosign-valid-ecdsa');
    expect(sha256(readFileSync(path.join(FIXTURES, 'cimage-cosign-valid-ecdsa/image-manifest.json')))).toBe(f.digest);
  });

  it('refuses it for another digest, another identity, another key, or one changed byte', async () => {
    const f = fixture('cimage-cosign-valid-ecdsa');
    const keys = { keys: [{ file: 'cosign.pub', key: f.key }], identity: f.identity };
    const layer = { payload: f.payload, signature: f.signature };
    await expect(verifyWith([layer], { subject: `sha256:${'1'.repeat(64)}`, keys })).rejects.toThrow(/signature 1: it signs sha256:634a8f35b5f1…, another digest/u);
    await expect(verifyWith([layer], { subject: f.digest, keys: { ...keys, identity: 'ghcr.io/someone/else' } })).rejects.toThrow(
      /signature 1: it is for "192\.168\.64\.2:5000\/cosign-signed-single-sample", not "ghcr\.io\/someone\/else"/u,
    );
    const other = fixture('sigstore-rs-busybox-ecdsa');
    await expect(verifyWith([layer], { subject: f.digest, keys: { keys: [{ file: 'other.pub', key: other.key }] } })).rejects.toThrow(
      /signature 1: does not verify with other\.pub/u,
    );
    const changed = Buffer.from(f.payload);
    changed[changed.length - 2] ^= 1;
    await expect(verifyWith([{ payload: changed, signature: f.signature }], { subject: f.digest, keys })).rejects.toThrow(/does not verify/u);
  });
});

let dir: string;
let up: UpstreamRegistry;
const keys: Record<'ec' | 'rsa' | 'ed' | 'other', KeyPair> = {} as never;
const images: Record<string, BuiltImage> = {};

/** A fresh single-platform image `name:1.0` on the upstream. */
async function image(name: string): Promise<BuiltImage> {
  const m = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'f', content: `${name}\n` }])] });
  await pushImage(up.url, name, '1.0', m);
  images[name] = m;
  return m;
}

/** Pushes a `.sig` for `m` holding these layers. */
async function signature(name: string, m: BuiltImage, layers: SignatureLayer[]): Promise<void> {
  await pushManifest(up.url, name, `${digestTag(m.digest)}.sig`, cosignSignatureManifest(layers));
}

const good = (name: string, m: BuiltImage, k: KeyPair, over: Partial<{ digest: string; identity: string; type: string }> = {}): SignatureLayer => {
  const payload = simpleSigningPayload(over.digest ?? m.digest, over.identity ?? `${up.host}/${name}`, over.type);
  return { payload, signature: sign(k.privateKey, payload) };
};

beforeAll(async () => {
  dir = makeTempDir('rsh-verify-');
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  keys.ec = keyPair('ec');
  keys.rsa = keyPair('rsa');
  keys.ed = keyPair('ed25519');
  keys.other = keyPair('ec');
  for (const [k, v] of Object.entries(keys)) await writeFile(path.join(dir, `${k}.pub`), v.pem);

  const signed = await image('v/signed');
  await signature('v/signed', signed, [good('v/signed', signed, keys.ec)]);
  const rsa = await image('v/rsa');
  await signature('v/rsa', rsa, [good('v/rsa', rsa, keys.rsa)]);
  const ed = await image('v/ed');
  await signature('v/ed', ed, [good('v/ed', ed, keys.ed)]);
  // Two signatures: the first by an untrusted key, the second by the trusted one (cosign appends).
  const two = await image('v/two');
  await signature('v/two', two, [good('v/two', two, keys.other), good('v/two', two, keys.ec)]);
  await image('v/unsigned');
  const otherKey = await image('v/other-key');
  await signature('v/other-key', otherKey, [good('v/other-key', otherKey, keys.other)]);
  const otherDigest = await image('v/other-digest');
  await signature('v/other-digest', otherDigest, [good('v/other-digest', otherDigest, keys.ec, { digest: images['v/signed']!.digest })]);
  const otherRepo = await image('v/other-repo');
  await signature('v/other-repo', otherRepo, [good('v/other-repo', otherRepo, keys.ec, { identity: `${up.host}/v/signed` })]);
  const notJson = await image('v/not-json');
  const junk = Buffer.from('this is not json');
  await signature('v/not-json', notJson, [{ payload: junk, signature: sign(keys.ec.privateKey, junk) }]);
  const huge = await image('v/huge');
  // A layer that declares 10 MB: never read into memory (the payload itself stays small here).
  await signature('v/huge', huge, [{ ...good('v/huge', huge, keys.ec), size: 10 * 1024 * 1024 }]);
  const wrongType = await image('v/wrong-type');
  await signature('v/wrong-type', wrongType, [{ ...good('v/wrong-type', wrongType, keys.ec), mediaType: 'application/octet-stream' }]);
}, 240_000);

afterAll(async () => {
  await up?.stop();
  removeDir(dir);
});

async function build(entries: unknown[], out = path.join(dir, '_site')) {
  const file = path.join(dir, 'images.json');
  await writeFile(file, JSON.stringify({ images: entries }));
  return testBuild(file, out, path.join(dir, 'cache'));
}

const entry = (name: string, key: string) => ({ source: `${up.host}/${name}:1.0`, verify: { key: `${key}.pub` } });

describe('the verify gate against a real upstream', () => {
  it.each([
    ['v/signed', 'ec'],
    ['v/rsa', 'rsa'],
    ['v/ed', 'ed'],
    ['v/two', 'ec'],
  ])('publishes %s, signed with the %s key', async (name, key) => {
    const { info } = await build([entry(name, key)], path.join(dir, `ok-${name.replace('/', '-')}`));
    expect(info.join('\n')).toContain(`signature verified with ${key}.pub`);
  });

  it.each([
    ['v/unsigned', /is not signed: the source has no cosign signature \(tag sha256-[0-9a-f]{64}\.sig\)/u],
    ['v/other-key', /signature 1: does not verify with ec\.pub/u],
    ['v/other-digest', /signature 1: it signs sha256:[0-9a-f]{12}…, another digest/u],
    ['v/other-repo', /signature 1: it is for "127\.0\.0\.1:\d+\/v\/signed", not "127\.0\.0\.1:\d+\/v\/other-repo"/u],
    ['v/not-json', /signature 1: its payload is not JSON/u],
    ['v/huge', /signature 1: its payload is declared as 10485760 bytes \(a signature payload is at most 65536\); not read/u],
    ['v/wrong-type', /signature 1: a "application\/octet-stream" layer, not a simple-signing payload/u],
  ])('refuses %s, naming the image, tag and digest, and leaves the previous output as it was', async (name, reason) => {
    const out = path.join(dir, 'kept');
    await mkdir(out, { recursive: true });
    await build([entry('v/signed', 'ec')], out);
    const before = await snapshotTree(out);
    const err = await build([entry('v/signed', 'ec'), entry(name, 'ec')], out).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const text = formatError(err);
    expect(text).toContain(`images[1] (${up.host}/${name}:1.0 → ${name}): ${name}:1.0 (${images[name]!.digest})`);
    expect(text).toMatch(reason);
    expect(text).toContain('cosign sign --key cosign.key');
    expect(await snapshotTree(out)).toEqual(before);
    expect(await readFile(path.join(out, 'v2/_catalog'), 'utf8')).not.toContain(name);
  });

  it('"verify": false on an entry turns a top-level gate off for it', async () => {
    const file = path.join(dir, 'images.json');
    await writeFile(file, JSON.stringify({ verify: { key: 'ec.pub' }, images: [`${up.host}/v/signed:1.0`, { source: `${up.host}/v/unsigned:1.0`, verify: false }] }));
    const { summary } = await testBuild(file, path.join(dir, 'global'), path.join(dir, 'cache'));
    expect(summary.repositories).toBe(2);
  });
});
