import { writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildSummary } from '../src/build.ts';
import { testBuild } from './harness/build.ts';
import { corruptJsonDigit, diffSnapshots, integrityProblems, snapshotTree, startCdn, startFaultProxy, type Cdn, type Fault, type FaultProxy } from './harness/fault-proxy.ts';
import { seedUpstream, type Fixtures, type ImageFixture } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';
import { formatError } from '../src/util/errors.ts';
import { type HttpTuning } from '../src/http/transport.ts';

// Faults from upstream, one scenario per test: a fault-injecting proxy between the build and a
// real docker-registry (anonymous, and token auth with the issuer behind the proxy too).
// Transient faults must end in a successful, verified build; permanent ones in a failure with one
// clear message. Always: every digest-named file in the output and the cache hashes to its name,
// no temp/staging leftovers, and after a failure the previous output is byte-for-byte intact.

const TOKEN = { user: 'bob', pass: 'token-Secret-5521' };
// Short delays so retries and timeouts cost milliseconds, not minutes.
const FAST: HttpTuning = { maxRetries: 4, retryBaseMs: 10, headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, blobRetryDelayMs: 10 };

let storage: string;
let up: UpstreamRegistry;
let tok: UpstreamRegistry;
let proxy: FaultProxy;
let tokProxy: FaultProxy;
let cdn: Cdn;
let fx: Fixtures;

beforeAll(async () => {
  storage = makeTempDir('rsh-faults-up-');
  up = await startRegistry({ storageDir: storage });
  fx = await seedUpstream(up.url);
  tok = await startRegistry({ storageDir: storage, auth: { kind: 'token', ...TOKEN } });
  proxy = await startFaultProxy({ target: up.url });
  tokProxy = await startFaultProxy({ target: tok.url, realm: tok.realm });
  cdn = await startCdn();
});

afterAll(async () => {
  await proxy?.close();
  await tokProxy?.close();
  await cdn?.close();
  await up?.stop();
  await tok?.stop();
  removeDir(storage);
});

interface Outcome {
  summary?: BuildSummary;
  error?: unknown;
  /** formatError(error): what the user sees. */
  message: string;
  out: string;
  cache: string;
  logs: string[];
  /** The proxy's request log during the faulty build. */
  requests: string[];
}

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

/**
 * One scenario: a clean build of another image first (the "previous output"), then the build of
 * `entries` with `fault` installed. Checks the integrity guarantees common to every scenario.
 */
async function scenario(opts: { entries: unknown[]; fault: Fault; via?: FaultProxy; http?: HttpTuning }): Promise<Outcome> {
  const via = opts.via ?? proxy;
  const dir = makeTempDir('rsh-fault-');
  dirs.push(dir);
  const out = path.join(dir, '_site');
  const cache = path.join(dir, '.cache', 'registrish');
  const logs: string[] = [];
  const images = path.join(dir, 'images.json');
  const build = async () =>
    (
      await testBuild(images, out, cache, {
        logger: { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) },
        env: { REGISTRISH_AUTH: JSON.stringify({ [tokProxy.host]: `${TOKEN.user}:${TOKEN.pass}` }), DOCKER_CONFIG: path.join(dir, 'none') },
        http: opts.http ?? FAST,
      })
    ).summary;

  via.reset();
  await writeFile(images, JSON.stringify({ images: [{ source: `${via.host}/docker/single:v1`, name: 'previous' }] }));
  await build();
  const before = await snapshotTree(out);

  via.reset();
  via.fault = opts.fault;
  await writeFile(images, JSON.stringify({ images: opts.entries }));
  let summary: BuildSummary | undefined;
  let error: unknown;
  try {
    summary = await build();
  } catch (err) {
    error = err;
  }
  via.fault = undefined;
  const requests = [...via.log];

  expect(await integrityProblems(out, cache)).toEqual([]);
  if (error) expect(diffSnapshots(before, await snapshotTree(out))).toEqual([]);
  return { summary, error, message: error ? formatError(error) : '', out, cache, logs, requests };
}

/** The output serves exactly the fixture: the tag's manifest bytes and every blob. */
async function expectPublished(o: Outcome, name: string, tag: string, f: ImageFixture): Promise<void> {
  if (o.error) throw o.error;
  const v2 = path.join(o.out, 'v2', ...name.split('/'));
  expect((await readFile(path.join(v2, 'manifests', tag))).equals(f.manifests[f.digest].body)).toBe(true);
  for (const d of f.blobs) expect((await readFile(path.join(v2, 'blobs', d))).length).toBe(f.blobSizes[d]);
}

/** A permanent failure: one message naming the image and its tag, and the cause. */
function expectFailure(o: Outcome, source: string, cause: RegExp): void {
  expect(o.error, 'the build should have failed').toBeDefined();
  expect(o.message).toContain(source);
  expect(o.message).toMatch(cause);
  if (process.env.SHOW_FAULT_MESSAGES) console.log(o.message);
}
/**
 * Holds the answer open until the client gives up (its timeout closes the connection), with a
 * long safety net. No fixed 2 s cut: on a loaded machine that could beat the client's timeout and
 * turn the expected timeout into a connection error.
 */
const stall = (c: { res: import('node:http').ServerResponse }) => {
  const t = setTimeout(() => c.res.destroy(), 60_000);
  c.res.on('close', () => clearTimeout(t));
};
const blobUrl = (d: string) => `${proxy.url}/v2/oci/single/blobs/${d}`;

const isBlob = (c: { req: { method?: string }; url: URL }, digest?: string) =>
  c.req.method === 'GET' && c.url.pathname.includes('/blobs/') && (!digest || c.url.pathname.endsWith(digest));
const isManifest = (c: { req: { method?: string }; url: URL }, method = 'GET') =>
  c.req.method === method && c.url.pathname.includes('/manifests/');

type FaultCall = Parameters<Fault>[0];
type Answer = Awaited<ReturnType<FaultCall['forward']>>;

/**
 * A fault on the first GET of blob `digest`: `bend` sends the upstream's answer bent. Later GETs
 * pass through, or, with `forward` (options for the request upstream), are forwarded with them too.
 */
function firstBlobGet(digest: string, bend: (c: FaultCall, a: Answer) => void, forward?: Parameters<FaultCall['forward']>[0]): Fault {
  let faulted = false;
  return async (c) => {
    if (!isBlob(c, digest) || (faulted && !forward)) return;
    const a = await c.forward(forward);
    if (faulted) c.send(a);
    else bend(c, a);
    faulted = true;
    return true;
  };
}

/** A fault on every GET of blob `digest`: the upstream's answer, as `change` makes it, is sent. */
function everyBlobGet(digest: string, change: (a: Answer) => Answer): Fault {
  return async (c) => {
    if (!isBlob(c, digest)) return;
    c.send(change(await c.forward()));
    return true;
  };
}

const single = () => fx['oci/single:1.0'];
const multi = () => fx['oci/multi:1.0'];
const singleEntry = () => ({ source: `${proxy.host}/oci/single:1.0` });
const multiEntry = () => ({ source: `${proxy.host}/oci/multi:1.0` });
/** The biggest blob of oci/single: the one cut in the middle. */
const bigBlob = () => single().blobs.reduce((a, b) => (single().blobSizes[a] >= single().blobSizes[b] ? a : b));

describe('transient faults end in a verified build', () => {
  it('connection reset in the middle of a blob: resumed with Range', async () => {
    const d = bigBlob();
    const o = await scenario({ entries: [singleEntry()], fault: firstBlobGet(d, (c, a) => c.resetAfter(a, Math.floor(a.body.length / 2))) });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(o.requests.some((r) => r.includes(d) && /\[bytes=\d+-\] → 206/.test(r))).toBe(true);
  });

  it('connection reset mid-blob on an upstream that ignores Range: starts over from byte 0', async () => {
    const d = bigBlob();
    // Every GET asks upstream without the Range header: a 200 with the whole blob, as servers without Range support answer.
    const fault = firstBlobGet(d, (c, a) => c.resetAfter(a, Math.floor(a.body.length / 2)), { headers: { range: undefined } });
    const o = await scenario({ entries: [singleEntry()], fault });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(o.requests.some((r) => r.includes(d) && /\[bytes=\d+-\] → 200/.test(r))).toBe(true);
  });

  it('body shorter than its Content-Length (clean close): resumed', async () => {
    const d = bigBlob();
    const o = await scenario({ entries: [singleEntry()], fault: firstBlobGet(d, (c, a) => c.closeAfter(a, 10)) });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(o.requests.filter((r) => r.includes(d)).length).toBeGreaterThanOrEqual(2);
  });

  it.each([500, 502, 503])('%i for the first 3 requests: retried with backoff', async (status) => {
    const o = await scenario({
      entries: [multiEntry()],
      fault: proxy.failFirst(3, {
        skip: (c) => c.url.pathname === '/v2/',
        with: () => ({ status, headers: { 'content-type': 'text/plain' }, body: Buffer.from('upstream trouble') }),
      }),
    });
    await expectPublished(o, 'oci/multi', '1.0', multi());
    expect(proxy.faults).toBe(3);
    expect(o.requests.filter((r) => r.endsWith(`→ ${status}`))).toHaveLength(3);
  });

  it('429 with Retry-After: waits as asked, then succeeds', async () => {
    let firstAt = 0;
    let retryAt = 0;
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (!isManifest(c, 'HEAD')) return;
        if (c.seen === 1) {
          firstAt = Date.now();
          c.send({ status: 429, headers: { 'retry-after': '1' }, body: Buffer.alloc(0) });
          return true;
        }
        if (c.seen === 2) retryAt = Date.now();
      },
    });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(retryAt - firstAt).toBeGreaterThanOrEqual(950);
  });

  it('token endpoint failing (503) then recovering', async () => {
    const o = await scenario({
      via: tokProxy,
      entries: [{ source: `${tokProxy.host}/oci/single:1.0` }],
      fault: (c) => {
        if (!c.url.pathname.endsWith('/token') || c.seen > 2) return;
        c.send({ status: 503, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":"temporarily_unavailable"}') });
        return true;
      },
    });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(o.requests.filter((r) => r.includes('/token') && r.endsWith('→ 503'))).toHaveLength(2);
    expect(o.requests.some((r) => r.includes('/token') && r.endsWith('→ 200'))).toBe(true);
  });

  it('response headers stalled past the timeout: retried', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      http: { ...FAST, headersTimeoutMs: 300 },
      fault: (c) => {
        if (!isManifest(c) || c.seen > 1) return;
        stall(c);
        return true;
      },
    });
    await expectPublished(o, 'oci/single', '1.0', single());
  });

  it('blob body stalled past the timeout mid-way: resumed', async () => {
    const d = bigBlob();
    const o = await scenario({
      entries: [singleEntry()],
      http: { ...FAST, bodyTimeoutMs: 300 },
      fault: firstBlobGet(d, (c, a) => {
        c.res.writeHead(a.status, a.headers);
        c.res.write(a.body.subarray(0, 20));
        stall(c);
      }),
    });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(o.requests.some((r) => r.includes(d) && r.includes('[bytes=20-] → 206'))).toBe(true);
  });

  it('blob redirected to a CDN that rejects Authorization (as S3/R2 do): succeeds without sending it', async () => {
    for (const [d, bytes] of single().image.blobs) cdn.objects.set(`/objects/${d}`, bytes);
    cdn.log.length = 0;
    const o = await scenario({
      via: tokProxy,
      entries: [{ source: `${tokProxy.host}/oci/single:1.0` }],
      fault: (c) => {
        if (!isBlob(c)) return;
        const d = c.url.pathname.split('/').pop()!;
        c.send({ status: 307, headers: { location: `${cdn.url}/objects/${d}?X-Amz-Signature=0123abcd` }, body: Buffer.alloc(0) });
        return true;
      },
    });
    await expectPublished(o, 'oci/single', '1.0', single());
    expect(cdn.log.length).toBe(single().blobs.length);
    expect(cdn.log.filter((l) => l.includes('Authorization'))).toEqual([]);
    // The registry itself did get the bearer token (the redirect dropped it, not our config).
    expect(tokProxy.authorizations.some((a) => a.startsWith('Bearer '))).toBe(true);
  });

  it('a Docker-Content-Digest header that lies: ignored, the bytes are verified', async () => {
    const lie = `sha256:${'0'.repeat(64)}`;
    const o = await scenario({
      entries: [multiEntry()],
      fault: async (c) => {
        const a = await c.forward();
        if (a.headers['docker-content-digest']) a.headers['docker-content-digest'] = lie;
        c.send(a);
        return true;
      },
    });
    await expectPublished(o, 'oci/multi', '1.0', multi());
    expect(await readFile(path.join(o.out, '_headers'), 'utf8')).not.toContain(lie);
  });

  it("a manifest whose mediaType disagrees with its Content-Type: the document's own type is published", async () => {
    const f = fx['docker/single:v2'];
    const o = await scenario({
      entries: [{ source: `${proxy.host}/docker/single:v2` }],
      fault: async (c) => {
        if (!c.url.pathname.includes('/manifests/')) return;
        const a = await c.forward();
        a.headers['content-type'] = 'application/vnd.oci.image.manifest.v1+json';
        c.send(a);
        return true;
      },
    });
    await expectPublished(o, 'docker/single', 'v2', f);
    expect(await readFile(path.join(o.out, '_headers'), 'utf8')).toContain(
      '/v2/docker/single/manifests/v2\n  Content-Type: application/vnd.docker.distribution.manifest.v2+json',
    );
  });
});

describe('permanent faults fail with one clear message and lose nothing', () => {
  const src = () => `${proxy.host}/oci/single:1.0`;

  it('body longer than the descriptor size', async () => {
    const d = bigBlob();
    const o = await scenario({
      entries: [singleEntry()],
      fault: everyBlobGet(d, (a) => {
        a.body = Buffer.concat([a.body, Buffer.from('trailing garbage')]);
        delete a.headers['content-length'];
        return a;
      }),
    });
    expectFailure(o, src(), new RegExp(`blob ${d}.*more than the ${single().blobSizes[d]} bytes`));
    expect(o.message).toContain(blobUrl(d));
  });

  it('corrupted bytes in a blob (digest mismatch)', async () => {
    const d = bigBlob();
    const o = await scenario({
      entries: [singleEntry()],
      fault: everyBlobGet(d, (a) => {
        a.body = Buffer.from(a.body);
        a.body[10] ^= 0xff;
        return a;
      }),
    });
    expectFailure(o, src(), new RegExp(`blob ${d}: downloaded bytes hash to sha256:[a-f0-9]{64}; refusing to store them`));
    expect(o.message).toContain(blobUrl(d));
  });

  it('corrupted bytes in a manifest fetched by digest', async () => {
    const child = multi().platforms[0].digest;
    const o = await scenario({
      entries: [multiEntry()],
      fault: async (c) => {
        if (!isManifest(c) || !c.url.pathname.endsWith(child)) return;
        const a = await c.forward();
        c.send({ ...a, body: corruptJsonDigit(a.body) });
        return true;
      },
    });
    expectFailure(o, `${proxy.host}/oci/multi:1.0`, new RegExp(`manifest ${child}.*does not match its digest`));
  });

  it('503 on every request: gives up after the retries, naming the URL and status', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (c.url.pathname === '/v2/') return;
        c.send({ status: 503, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}') });
        return true;
      },
    });
    expectFailure(o, 'oci/single:1.0', /503 Service Unavailable after 5 attempts/);
    expect(o.message).toContain(`${proxy.url}/v2/oci/single/manifests/1.0`);
  });

  it('429 asking for a wait longer than we accept: fails at once with the hint', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (!isManifest(c, 'HEAD')) return;
        c.send({ status: 429, headers: { 'retry-after': '86400' }, body: Buffer.alloc(0) });
        return true;
      },
    });
    expectFailure(o, 'oci/single:1.0', /429 Too Many Requests; the server asks to retry in 86400 s[\s\S]*rate-limiting/);
  });

  it('a stall that never ends: fails with the timeout', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      http: { ...FAST, maxRetries: 1, headersTimeoutMs: 200 },
      fault: (c) => {
        if (!isManifest(c, 'HEAD')) return;
        stall(c);
        return true;
      },
    });
    expectFailure(o, `${proxy.url}/v2/oci/single/manifests/1.0`, /request failed after 2 attempts \(.*(UND_ERR_HEADERS_TIMEOUT|Headers Timeout)/i);
  });

  it('a redirect loop', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (isBlob(c)) {
          c.send({ status: 302, headers: { location: '/loop/a' }, body: Buffer.alloc(0) });
          return true;
        }
        if (c.url.pathname.startsWith('/loop/')) {
          c.send({ status: 302, headers: { location: c.url.pathname === '/loop/a' ? '/loop/b' : '/loop/a' }, body: Buffer.alloc(0) });
          return true;
        }
      },
    });
    expectFailure(o, src(), /redirect loop at http:\/\/127\.0\.0\.1:\d+\/loop\/a/);
  });

  it('an HTML 200 page instead of a manifest (captive portal)', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (!c.url.pathname.includes('/manifests/')) return;
        c.send({ status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: Buffer.from('<html><body>Please log in to the Wi-Fi</body></html>') });
        return true;
      },
    });
    expectFailure(o, 'oci/single:1.0', /answered with an HTML page instead of a manifest[\s\S]*captive portal/);
  });

  it('invalid JSON as a manifest', async () => {
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (!c.url.pathname.includes('/manifests/')) return;
        c.send({ status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: Buffer.from('{"schemaVersion": 2, "config": ') });
        return true;
      },
    });
    expectFailure(o, 'oci/single:1.0', /not valid JSON/);
  });

  it.each([
    ['with a Content-Length', true],
    ['streamed without one', false],
  ])('a manifest over 4 MiB (%s)', async (_label, withLength) => {
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', pad: 'x'.repeat(5 * 1024 * 1024) }));
    const o = await scenario({
      entries: [singleEntry()],
      fault: (c) => {
        if (!isManifest(c)) return;
        const headers = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
        if (withLength) c.send({ status: 200, headers, body: huge });
        else {
          c.res.writeHead(200, headers);
          c.res.end(huge);
        }
        return true;
      },
    });
    expectFailure(o, 'oci/single:1.0', /larger than 4194304 bytes; refusing to buffer it/);
  });

  it('Content-Encoding: gzip on a blob: refused, never stored decoded', async () => {
    const d = bigBlob();
    const o = await scenario({
      entries: [singleEntry()],
      fault: everyBlobGet(d, (a) => {
        const body = zlib.gzipSync(a.body);
        return { status: 200, headers: { ...a.headers, 'content-encoding': 'gzip', 'content-length': String(body.length) }, body };
      }),
    });
    expectFailure(o, src(), new RegExp(`blob ${d}: the upstream sent it with Content-Encoding "gzip"`));
    expect(o.message).toContain(blobUrl(d));
  });

  it('token endpoint down for good', async () => {
    const o = await scenario({
      via: tokProxy,
      entries: [{ source: `${tokProxy.host}/oci/single:1.0` }],
      fault: (c) => {
        if (!c.url.pathname.endsWith('/token')) return;
        c.send({ status: 502, headers: {}, body: Buffer.from('bad gateway') });
        return true;
      },
    });
    expectFailure(o, `${tokProxy.url}/token`, /502 Bad Gateway after 5 attempts/);
    expect(o.message).not.toContain(TOKEN.pass);
  });
});

describe('the integrity check itself', () => {
  it('catches a file that does not hash to its name, temp and staging leftovers', async () => {
    const dir = makeTempDir('rsh-integrity-');
    dirs.push(dir);
    const { mkdir } = await import('node:fs/promises');
    const hex = 'b'.repeat(64);
    await mkdir(path.join(dir, 'site', 'v2', 'x', 'blobs'), { recursive: true });
    await mkdir(path.join(dir, 'site', '.registrish-staging-1-2'), { recursive: true });
    await mkdir(path.join(dir, 'cache', 'blobs', 'sha256'), { recursive: true });
    await mkdir(path.join(dir, 'cache', 'tmp'), { recursive: true });
    await writeFile(path.join(dir, 'site', 'v2', 'x', 'blobs', `sha256:${hex}`), 'not it');
    await writeFile(path.join(dir, 'site', '.registrish-staging-1-2', 'f'), '');
    await writeFile(path.join(dir, 'cache', 'blobs', 'sha256', hex), 'not it either');
    await writeFile(path.join(dir, 'cache', 'tmp', `${hex}.1.1.abcd`), '');
    const problems = await integrityProblems(path.join(dir, 'site'), path.join(dir, 'cache'));
    expect(problems.join('\n')).toMatch(/v2\/x\/blobs\/sha256:b+: hashes to/);
    expect(problems.join('\n')).toMatch(/cache\/blobs\/sha256\/b+: hashes to/);
    expect(problems.join('\n')).toMatch(/staging leftover/);
    expect(problems.join('\n')).toMatch(/temp leftover/);
  });
});
