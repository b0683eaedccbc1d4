import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildSummary } from '../src/build.ts';
import { testBuild } from './harness/build.ts';
import { runCheck } from '../src/check/run.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { digestTag, keyPair, pushManifest, sbomReferrer, seedSignedApp, SIGSTORE_BUNDLE, SPDX, type KeyPair, type SignedApp } from './harness/attachments.ts';
import { skopeoInspectRaw } from './harness/clients.ts';
import { startFaultProxy, type FaultProxy } from './harness/fault-proxy.ts';
import { buildIndex, buildManifest, makeLayer, MT, pushImage } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Signatures, attestations, SBOMs and referrers mirrored with the image, against the real upstream
// registry (distribution 2.8: no referrers API, so the tag schema) and against a proxy in front of
// it that implements the referrers API; read back from the preview server with real skopeo, and
// checked by `registrish check`.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let dir: string;
let up: UpstreamRegistry;
let key: KeyPair;
let app: SignedApp;
let plain: { index: ReturnType<typeof buildIndex> };
let counter: FaultProxy;
let out: string;
let cache: string;
let first: BuildSummary;
let warnings: string[];
let serve: PreviewServer;

async function build(images: unknown, opts: { out?: string; cache?: string } = {}): Promise<BuildSummary> {
  const file = path.join(dir, 'images.json');
  await writeFile(file, JSON.stringify(images));
  const built = await testBuild(file, opts.out ?? out, opts.cache ?? cache);
  warnings = built.warnings;
  return built.summary;
}

const json = async (file: string) => JSON.parse(await readFile(path.join(out, file), 'utf8'));

beforeAll(async () => {
  dir = makeTempDir('rsh-attach-');
  out = path.join(dir, '_site');
  cache = path.join(dir, 'cache');
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  // Requests are counted through a transparent proxy (warm rebuilds must fetch nothing new).
  counter = await startFaultProxy({ target: up.url });
  key = keyPair('ec');
  app = await seedSignedApp(up.url, counter.host, key);
  const amd = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'x', content: 'plain\n' }])] });
  plain = { index: buildIndex('oci', [amd]) };
  await pushImage(up.url, 'plain/app', '1.0', plain.index);
  first = await build({ attachments: true, images: [`${counter.host}/${app.name}:1.0`, `${counter.host}/plain/app:1.0`] });
  serve = await startPreviewServer({ dir: out, port: 0 });
}, 240_000);

afterAll(async () => {
  await serve?.close();
  await counter?.close();
  await up?.stop();
  removeDir(dir);
});

describe('attachments: cosign tags and referrers', () => {
  it('publishes the cosign signature and attestation under their tags, byte for byte, with their blobs', async () => {
    const sigTag = `${digestTag(app.index.digest)}.sig`;
    const attTag = `${digestTag(app.amd64.digest)}.att`;
    expect(await readFile(path.join(out, `v2/signed/app/manifests/${sigTag}`))).toEqual(app.signature.bytes);
    expect(await readFile(path.join(out, `v2/signed/app/manifests/${attTag}`))).toEqual(app.attestation.bytes);
    for (const [digest, bytes] of [...app.signature.blobs, ...app.attestation.blobs]) {
      expect(await readFile(path.join(out, `v2/signed/app/blobs/${digest}`))).toEqual(bytes);
    }
    expect((await json('v2/signed/app/tags/list')).tags).toEqual(expect.arrayContaining(['1.0', sigTag, attTag]));
    // Read back by a real client through the preview server (Netlify's _headers applied).
    const raw = await skopeoInspectRaw(`${serve.url.replace('http://', '')}/signed/app:${sigTag}`);
    expect(raw.body).toEqual(app.signature.bytes);
    expect(raw.digest).toBe(app.signature.digest);
  });

  it('serves each subject its referrers index: the SBOM, the Sigstore bundle, and an empty index for the rest', async () => {
    const referrers = async (subject: string, name = 'signed/app') => {
      const res = await fetch(`${serve.url}/v2/${name}/referrers/${subject}`);
      expect(res.status, `${name} ${subject}`).toBe(200);
      expect(res.headers.get('content-type')).toBe(OCI_INDEX);
      return (await res.json()) as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
    };
    const amd = await referrers(app.amd64.digest);
    expect(amd).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: MT.ociManifest, digest: app.sbom.digest, size: app.sbom.size, artifactType: SPDX, annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' } }],
    });
    const top = await referrers(app.index.digest);
    expect(top.manifests.map((m) => [m.digest, m.artifactType])).toEqual([[app.bundle.digest, SIGSTORE_BUNDLE]]);
    expect((top.manifests[0]!.annotations as Record<string, string>)['dev.sigstore.bundle.predicateType']).toBe('https://slsa.dev/provenance/v1');
    expect((await referrers(app.arm64.digest)).manifests).toEqual([]);
    expect((await referrers(plain.index.digest, 'plain/app')).manifests).toEqual([]);
    // The referrer manifests themselves, by digest, and the fallback tag for clients without the API.
    expect(await readFile(path.join(out, `v2/signed/app/manifests/${app.sbom.digest}`))).toEqual(app.sbom.bytes);
    const fallback = await fetch(`${serve.url}/v2/signed/app/manifests/${digestTag(app.amd64.digest)}`, { headers: { accept: OCI_INDEX } });
    expect(fallback.headers.get('content-type')).toBe(OCI_INDEX);
    expect(JSON.parse(await fallback.text())).toEqual(amd);
    // No subject we never looked up gets an answer it would have to invent.
    expect((await fetch(`${serve.url}/v2/signed/app/referrers/sha256:${'0'.repeat(64)}`)).status).toBe(404);
  });

  it('registrish check reads the referrers answers and passes', async () => {
    const report = await runCheck({ url: serve.url, host: 'netlify' });
    const failed = report.rows.filter((r) => r.problems.some((p) => p.severity === 'fail'));
    expect(failed).toEqual([]);
    expect(report.rows.filter((r) => r.label.includes('/referrers/')).length).toBeGreaterThanOrEqual(3);
  });

  it('a warm rebuild fetches no manifest and no blob again', async () => {
    counter.reset();
    const again = await build({ attachments: true, images: [`${counter.host}/${app.name}:1.0`, `${counter.host}/plain/app:1.0`] });
    expect(again.blobsFetched).toBe(0);
    expect(again.manifestsFetched).toBe(0);
    const gets = counter.log.filter((l) => l.startsWith('GET ') && /\/(manifests|blobs)\//u.test(l));
    expect(gets).toEqual([]);
    expect(first.manifestsFetched).toBeGreaterThan(0);
  });

  it('without "attachments" nothing of it is published', async () => {
    const o = path.join(dir, 'no-attach');
    await build({ images: [`${counter.host}/${app.name}:1.0`] }, { out: o });
    const list = JSON.parse(await readFile(path.join(o, 'v2/signed/app/tags/list'), 'utf8'));
    expect(list.tags).toEqual(['1.0']);
    await expect(readFile(path.join(o, `v2/signed/app/referrers/${app.index.digest}`))).rejects.toThrow(/ENOENT/u);
  });

  it('a platform filter keeps the platform manifests\' attachments and says the index\'s cannot carry over', async () => {
    const o = path.join(dir, 'filtered');
    const s = await build({ images: [{ source: `${counter.host}/${app.name}:1.0`, platforms: ['linux/amd64'], attachments: true }] }, { out: o });
    expect(s.filtered).toHaveLength(1);
    expect(warnings.join('\n')).toMatch(/platform filter made a new index .* cannot carry over; the platform manifests keep theirs/su);
    const tags = JSON.parse(await readFile(path.join(o, 'v2/signed/app/tags/list'), 'utf8')).tags as string[];
    expect(tags).toContain(`${digestTag(app.amd64.digest)}.att`);
    expect(tags).not.toContain(`${digestTag(app.index.digest)}.sig`);
    const filteredIndex = s.filtered[0]!.to;
    expect(JSON.parse(await readFile(path.join(o, `v2/signed/app/referrers/${filteredIndex}`), 'utf8')).manifests).toEqual([]);
  });

  it('a listed referrer that names another subject is skipped with a warning, not published', async () => {
    const other = sbomReferrer(plain.index);
    await pushManifest(up.url, 'signed/app', other.digest, other);
    // The fallback index of the arm64 manifest lists a referrer of another image.
    const { referrersTagIndex } = await import('./harness/attachments.ts');
    await pushManifest(up.url, 'signed/app', digestTag(app.arm64.digest), referrersTagIndex([other]));
    const o = path.join(dir, 'stale');
    await build({ images: [{ source: `${counter.host}/${app.name}:1.0`, attachments: true }] }, { out: o });
    expect(warnings.join('\n')).toMatch(new RegExp(`listed as a referrer of sha256:${app.arm64.digest.slice(7, 19)}…, sha256:${other.digest.slice(7, 19)}… names another subject; skipped`, 'u'));
    await expect(readFile(path.join(o, `v2/signed/app/manifests/${other.digest}`))).rejects.toThrow(/ENOENT/u);
    expect(JSON.parse(await readFile(path.join(o, `v2/signed/app/referrers/${app.arm64.digest}`), 'utf8')).manifests).toEqual([]);
  });
});

describe('an upstream with the referrers API', () => {
  let api: http.Server;
  let apiHost: string;
  const listed = new Map<string, unknown[]>();
  const asked: string[] = [];

  beforeAll(async () => {
    // A proxy in front of the real registry that answers GET /v2/<name>/referrers/<digest> from
    // what the test pushed (and pages it, one entry per page, with Link headers).
    api = http.createServer(async (req, res) => {
      const m = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})(?:\?page=(\d+))?$/u.exec(req.url ?? '');
      if (m) {
        asked.push(m[2]!);
        const all = listed.get(`${m[1]}@${m[2]}`) ?? [];
        const page = Number(m[3] ?? 0);
        const headers: http.OutgoingHttpHeaders = { 'content-type': OCI_INDEX };
        if (page + 1 < all.length) headers.link = `</v2/${m[1]}/referrers/${m[2]}?page=${page + 1}>; rel="next"`;
        res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: all.slice(page, page + 1) }));
        return;
      }
      const upstream = await fetch(`${up.url}${req.url}`, { method: req.method, headers: { accept: String(req.headers.accept ?? '') } });
      const body = Buffer.from(await upstream.arrayBuffer());
      res.writeHead(upstream.status, Object.fromEntries([...upstream.headers].filter(([k]) => !['content-encoding', 'transfer-encoding', 'connection'].includes(k))));
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    apiHost = `127.0.0.1:${(api.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => api.close(() => r())));

  it('reads every page of the API (no fallback tag needed) and publishes what it lists', async () => {
    const amd = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'y', content: 'api\n' }])] });
    await pushImage(up.url, 'api/app', '1.0', amd);
    const one = sbomReferrer(amd);
    const bundleKey = keyPair('ed25519');
    const { sigstoreBundleReferrer } = await import('./harness/attachments.ts');
    const two = sigstoreBundleReferrer(amd, bundleKey.privateKey);
    for (const r of [one, two]) await pushManifest(up.url, 'api/app', r.digest, r);
    listed.set(`api/app@${amd.digest}`, [one, two].map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.size })));
    const o = path.join(dir, 'api');
    await build({ images: [{ source: `${apiHost}/api/app:1.0`, attachments: true }] }, { out: o, cache: path.join(dir, 'api-cache') });
    expect(asked).toContain(amd.digest);
    const index = JSON.parse(await readFile(path.join(o, `v2/api/app/referrers/${amd.digest}`), 'utf8'));
    expect(index.manifests.map((m: { digest: string }) => m.digest).sort()).toEqual([one.digest, two.digest].sort());
    // artifactType comes from each manifest itself, not from the (sparse) listing.
    expect(index.manifests.map((m: { artifactType: string }) => m.artifactType).sort()).toEqual([SIGSTORE_BUNDLE, SPDX].sort());
    expect(await readFile(path.join(o, `v2/api/app/manifests/${two.digest}`))).toEqual(two.bytes);
  });
});
