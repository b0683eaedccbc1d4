import { fetch, type Dispatcher, type RequestInit, type Response } from 'undici';
import { expect, it } from 'vitest';
import { runCheck } from '../../src/check/run.ts';
import { NOT_FOUND_CODES } from '../../src/publish/not-found.ts';
import { ctrPull, dockerPull, podmanPull, skopeoCopy } from './clients.ts';
import type { HostSite } from './host-site.ts';

// What every host must answer besides the content itself, registered as tests in each host's own
// test file against its real or own local server:
// - a missing manifest, blob or repository: 404 with the OCI error body, so that every client says
//   "not found" (docker: `manifest unknown`) instead of a parse error; the site's 404 elsewhere;
// - the checks of the OCI distribution-spec conformance suite's pull and content-discovery
//   workflows (conformance/01_pull_test.go, 03_discovery_test.go before its 2025 redesign), as the
//   suite runs them against a registry it may not push to (OCI_TAG_NAME, OCI_MANIFEST_DIGEST,
//   OCI_BLOB_DIGEST, OCI_TAG_LIST): status codes, Docker-Content-Digest when present, error bodies,
//   tags/list order. Written from what the suite checks, not from its code.

export interface AnswersTarget {
  /** `http://127.0.0.1:PORT` */
  base: string;
  /** `127.0.0.1:PORT`, for the pull clients */
  registry: string;
  site: HostSite;
  /** HTTPS with a self-signed certificate (wrangler): requests skip verification, ctr uses --skip-verify. */
  insecureTls?: { dispatcher: Dispatcher };
}

export interface AnswersOptions {
  /**
   * Cloudflare Pages: the `_headers` rules that type every published digest URL also match a
   * missing digest (a rule cannot tell), so the error body of a missing *digest* comes with the
   * manifest or blob type; a missing tag or repository gets application/json.
   */
  digestErrorsTyped?: false;
  /** The suite's `n`/`last` checks: no static host answers them (see README). */
  honoursPagination?: boolean;
}

const DUMMY_DIGEST = `sha256:${'0'.repeat(63)}1`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function expectError(res: Response, code: string, typed = true): Promise<void> {
  expect(res.status, res.url).toBe(404);
  if (typed) expect(res.headers.get('content-type'), res.url).toBe('application/json');
  const body = res.headers.get('content-length') === '0' && res.body === null ? '' : await res.text();
  expect(JSON.parse(body), res.url).toEqual({ errors: [{ code, message: expect.any(String) }] });
}

/** Registers the answers tests; `target()` is read when they run (after beforeAll). */
export function registryAnswersTests(target: () => AnswersTarget, opts: AnswersOptions = {}): void {
  const digestTyped = opts.digestErrorsTyped !== false;
  const get = (p: string, init: RequestInit = {}): Promise<Response> =>
    fetch(target().base + p, { ...init, ...(target().insecureTls ? { dispatcher: target().insecureTls!.dispatcher } : {}) });

  it('answers a missing manifest, blob or repository with 404 and the OCI error body; the site keeps its own 404 outside /v2/', async () => {
    const { manifest, blob, name } = NOT_FOUND_CODES;
    await expectError(await get('/v2/oci/multi/manifests/typo'), manifest.code);
    await expectError(await get('/v2/a/b/c/manifests/typo'), manifest.code);
    await expectError(await get(`/v2/oci/multi/manifests/${DUMMY_DIGEST}`), manifest.code, digestTyped);
    await expectError(await get(`/v2/oci/multi/blobs/${DUMMY_DIGEST}`), blob.code, digestTyped);
    await expectError(await get('/v2/no/such/repo/manifests/1.0'), name.code);
    await expectError(await get('/v2/nosuchrepo/tags/list'), name.code);
    await expectError(await get(`/v2/nosuchrepo/blobs/${DUMMY_DIGEST}`), name.code, digestTyped);
    // HEAD: the same status, no body (the suite checks HEAD of a missing blob and manifest).
    for (const p of ['/v2/oci/multi/manifests/typo', `/v2/oci/multi/blobs/${DUMMY_DIGEST}`]) {
      expect((await get(p, { method: 'HEAD' })).status, p).toBe(404);
    }
    const page = await get('/no/such/page.html');
    expect(page.status).toBe(404);
    expect(await page.text()).not.toContain('"errors"');
  });

  it('registrish check finds nothing wrong: error bodies of a missing tag, blob and repository, /v2/ with its API version', async () => {
    // check reaches a registry over plain HTTP or a verified certificate only.
    if (target().insecureTls) return;
    const report = await runCheck({ url: target().base, images: [{ name: 'oci/multi', tags: ['1.0'] }] });
    expect(report.rows.filter((r) => r.problems.length > 0)).toEqual([]);
    expect(report.rows.filter((r) => r.label.includes('(missing on purpose)'))).toHaveLength(3);
  });

  it('docker pull of a missing tag prints "manifest unknown"; podman, skopeo and containerd say not found', async () => {
    const { registry, site, insecureTls } = target();
    const ref = `${registry}/oci/multi:typo`;
    const docker = await dockerPull(site.dockerd.host, ref).then(() => 'pulled', (e: Error) => e.message);
    expect(docker).toMatch(/manifest unknown/u);
    expect(docker).not.toMatch(/error parsing HTTP 404 response body/u);
    const podman = await podmanPull(ref).then(() => 'pulled', (e: Error) => e.message);
    expect(podman).toMatch(/manifest unknown/u);
    const skopeo = await skopeoCopy(ref).then(() => 'pulled', (e: Error) => e.message);
    expect(skopeo).toMatch(/manifest unknown/u);
    const ctr = await ctrPull(site.containerd.address, ref, { skipVerify: insecureTls !== undefined }).then(() => 'pulled', (e: Error) => e.message);
    expect(ctr).toMatch(/not found/u);
  });

  it("passes the conformance suite's pull workflow (read-only: OCI_TAG_NAME, OCI_MANIFEST_DIGEST, OCI_BLOB_DIGEST)", async () => {
    const { site } = target();
    // An OCI image manifest (the suite asks for it with Accept: OCI manifest) and one of its blobs.
    const name = 'oci/single';
    const tag = '1.0';
    const digest = site.fx['oci/single:1.0']!.digest;
    const manifest = (await (await get(`/v2/${name}/manifests/${digest}`)).json()) as { config: { digest: string } };
    const blobDigest = manifest.config.digest;
    const accept = { accept: OCI_MANIFEST };
    const digestIf = (res: Response, want: string): void => {
      const h = res.headers.get('docker-content-digest');
      if (h) expect(h, res.url).toBe(want);
    };
    // Pull blobs
    expect((await get(`/v2/${name}/blobs/${DUMMY_DIGEST}`, { method: 'HEAD' })).status).toBe(404);
    let res = await get(`/v2/${name}/blobs/${blobDigest}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    digestIf(res, blobDigest);
    expect((await get(`/v2/${name}/blobs/${DUMMY_DIGEST}`)).status).toBe(404);
    expect((await get(`/v2/${name}/blobs/${blobDigest}`)).status).toBe(200);
    // Pull manifests (the suite's missing reference is `.INVALID_MANIFEST_NAME`)
    expect((await get(`/v2/${name}/manifests/.INVALID_MANIFEST_NAME`, { method: 'HEAD', headers: accept })).status).toBe(404);
    for (const ref of [digest, tag]) {
      res = await get(`/v2/${name}/manifests/${ref}`, { method: 'HEAD', headers: accept });
      expect(res.status, ref).toBe(200);
      digestIf(res, digest);
      res = await get(`/v2/${name}/manifests/${ref}`, { headers: accept });
      expect(res.status, ref).toBe(200);
      digestIf(res, digest);
    }
    expect((await get(`/v2/${name}/manifests/.INVALID_MANIFEST_NAME`, { headers: accept })).status).toBe(404);
    // Error codes: a malformed digest is 400 with an OCI error body, or 404.
    res = await get(`/v2/${name}/manifests/sha256:totallywrong`, { headers: accept });
    expect([400, 404]).toContain(res.status);
    if (res.status === 400) expect(((await res.json()) as { errors: unknown[] }).errors.length).toBeGreaterThan(0);
  });

  it("passes the conformance suite's content-discovery tag listing, except what a static file cannot answer (n, last)", async () => {
    const name = 'oci/single';
    const res = await get(`/v2/${name}/tags/list`);
    expect(res.status).toBe(200);
    const { tags } = (await res.json()) as { tags: string[] };
    expect(tags.length).toBeGreaterThan(1);
    const lexical = [...tags].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
    const ascii = [...tags].sort();
    expect([JSON.stringify(lexical), JSON.stringify(ascii)]).toContain(JSON.stringify(tags));
    // `?n=1` and `&last=`: a static file is the whole list whatever the query.
    const n = (await (await get(`/v2/${name}/tags/list?n=1`)).json()) as { tags: string[] };
    const last = (await (await get(`/v2/${name}/tags/list?n=1&last=${encodeURIComponent(tags[0]!)}`)).json()) as { tags: string[] };
    if (opts.honoursPagination) {
      expect(n.tags).toEqual(tags.slice(0, 1));
      expect(last.tags).not.toContain(tags[0]);
    } else {
      expect(n.tags).toEqual(tags);
      expect(last.tags).toEqual(tags);
    }
  });
}
