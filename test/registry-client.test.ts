import { createHash } from 'node:crypto';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Credential } from '../src/sources/registry/credentials.ts';
import { HttpError, NotFoundError, RegistrishError } from '../src/util/errors.ts';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, isIndexType, isKnownManifestType, isManifestType, MANIFEST_ACCEPT, manifestMediaType, OCI_INDEX, OCI_MANIFEST } from '../src/model/media-types.ts';
import { clearSecrets } from '../src/util/redact.ts';
import { RegistryClient } from '../src/sources/registry/client.ts';
import { parseRetryAfter, Transport } from '../src/http/transport.ts';

const ORIGIN = 'https://registry.test';
const AUTH = 'https://auth.test';
const CDN = 'https://cdn.test';
const BEARER = `Bearer realm="${AUTH}/token",service="registry.test"`;
const DIGEST = `sha256:${'a'.repeat(64)}`;

const ociManifest = JSON.stringify({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: DIGEST, size: 2 },
  layers: [],
});

type Headers = Record<string, string | undefined>;
interface Seen {
  method: string;
  path: string;
  headers: Headers;
}

let mock: MockAgent;
beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
  clearSecrets();
});
afterEach(async () => {
  await mock.close();
  clearSecrets();
});

function client(extra: { credential?: Credential; maxRetries?: number; now?: () => number } = {}): RegistryClient {
  return new RegistryClient({
    registry: 'registry.test',
    apiHost: 'registry.test',
    insecure: false,
    dispatcher: mock,
    maxRetries: extra.maxRetries ?? 3,
    retryBaseMs: 1,
    credential: extra.credential,
    now: extra.now,
  });
}

/** Records each request to `origin` matching `path` and answers with `respond(n)` (n = 0, 1, …). */
function route(
  origin: string,
  path: string | RegExp,
  respond: (n: number, req: Seen) => { status: number; body?: string | Buffer; headers?: Record<string, string | string[] | undefined> },
  method = 'GET',
): Seen[] {
  const seen: Seen[] = [];
  mock
    .get(origin)
    .intercept({ path, method })
    .reply((req) => {
      const s: Seen = { method: req.method, path: req.path, headers: { ...(req.headers as Headers) } };
      seen.push(s);
      const r = respond(seen.length - 1, s);
      const headers = Object.fromEntries(Object.entries(r.headers ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string | string[]>;
      return { statusCode: r.status, data: r.body ?? '', responseOptions: { headers } };
    })
    .persist();
  return seen;
}

function tokenRoute(): Seen[] {
  return route(AUTH, /^\/token/, (n) => ({ status: 200, body: JSON.stringify({ token: `tok-${n + 1}`, expires_in: 300 }), headers: { 'content-type': 'application/json' } }));
}

async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function caught<T>(p: Promise<T>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('manifests', () => {
  test('GET sends Accept with all four manifest types, identity encoding and our User-Agent', async () => {
    const seen = route(ORIGIN, '/v2/library/alpine/manifests/3.20', () => ({
      status: 200,
      body: ociManifest,
      headers: { 'content-type': OCI_MANIFEST, 'docker-content-digest': DIGEST },
    }));
    const got = await client().getManifest('library/alpine', '3.20');
    expect(got.bytes.toString()).toBe(ociManifest);
    expect(got.mediaType).toBe(OCI_MANIFEST);
    expect(got.headerDigest).toBe(DIGEST);
    const h = seen[0]!.headers;
    for (const t of [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX]) expect(h.accept).toContain(t);
    expect(h['accept-encoding']).toBe('identity');
    expect(h['user-agent']).toMatch(/^registrish\//);
    expect(h.authorization).toBeUndefined();
  });

  test('HEAD: digest, type (parameters stripped) and size; undefined on 404', async () => {
    const seen = route(
      ORIGIN,
      '/v2/a/manifests/v1',
      () => ({ status: 200, headers: { 'content-type': `${OCI_INDEX}; charset=utf-8`, 'docker-content-digest': DIGEST, 'content-length': '321' } }),
      'HEAD',
    );
    route(ORIGIN, '/v2/a/manifests/missing', () => ({ status: 404 }), 'HEAD');
    expect(await client().headManifest('a', 'v1')).toEqual({ digest: DIGEST, mediaType: OCI_INDEX, size: 321 });
    expect(seen[0]!.headers.accept).toContain(DOCKER_MANIFEST_LIST);
    expect(await client().headManifest('a', 'missing')).toBeUndefined();
  });

  test('a manifest without mediaType takes the Content-Type, then its shape', async () => {
    const index = JSON.stringify({ schemaVersion: 2, manifests: [] });
    route(ORIGIN, '/v2/a/manifests/typed', () => ({ status: 200, body: index, headers: { 'content-type': `${OCI_INDEX}; charset=utf-8` } }));
    route(ORIGIN, '/v2/a/manifests/generic', () => ({ status: 200, body: index, headers: { 'content-type': 'application/octet-stream' } }));
    expect((await client().getManifest('a', 'typed')).mediaType).toBe(OCI_INDEX);
    expect((await client().getManifest('a', 'generic')).mediaType).toBe(OCI_INDEX);
  });

  test('404 → NotFoundError naming registry, repo and ref', async () => {
    route(ORIGIN, '/v2/a/b/manifests/nope', () => ({ status: 404, body: '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}' }));
    const err = await caught(client().getManifest('a/b', 'nope'));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain('registry.test/a/b:nope');
  });

  test('an HTML page (captive portal) is refused', async () => {
    route(ORIGIN, '/v2/a/manifests/v1', () => ({ status: 200, body: '<html>login</html>', headers: { 'content-type': 'text/html; charset=utf-8' } }));
    const err = await caught(client().getManifest('a', 'v1'));
    expect(err).toBeInstanceOf(RegistrishError);
    expect(err.message).toMatch(/HTML page/);
  });

  test('not a manifest type and not JSON is refused', async () => {
    route(ORIGIN, '/v2/a/manifests/v1', () => ({ status: 200, body: 'hello', headers: { 'content-type': 'text/plain' } }));
    expect((await caught(client().getManifest('a', 'v1'))).message).toMatch(/not a JSON manifest/);
  });

  test('schema 1 is refused with advice', async () => {
    const s1 = JSON.stringify({ schemaVersion: 1, name: 'a', tag: 'v1', fsLayers: [] });
    route(ORIGIN, '/v2/a/manifests/v1', () => ({ status: 200, body: s1, headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' } }));
    const err = (await caught(client().getManifest('a', 'v1'))) as RegistrishError;
    expect(err.message).toMatch(/schema 1/);
    expect(err.message).toMatch(/push the image again/);
    expect(err.hint).toMatch(/push it again/);
  });

  test('larger than maxBytes: refused by Content-Length, and while reading', async () => {
    route(ORIGIN, '/v2/a/manifests/big', () => ({ status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } }));
    expect((await caught(client().getManifest('a', 'big', { maxBytes: 10 }))).message).toMatch(/larger than 10 bytes/);
  });

  test('a compressed manifest is refused', async () => {
    route(ORIGIN, '/v2/a/manifests/gz', () => ({ status: 200, body: 'xx', headers: { 'content-type': OCI_MANIFEST, 'content-encoding': 'gzip' } }));
    expect((await caught(client().getManifest('a', 'gz'))).message).toMatch(/Content-Encoding "gzip"/);
  });

  test('invalid names are refused before any request', async () => {
    await expect(client().getManifest('../etc', 'v1')).rejects.toThrow(/invalid repository/);
    await expect(client().getManifest('a', 'v1/../../x')).rejects.toThrow(/invalid tag/);
  });
});

describe('auth flow', () => {
  test('401 → anonymous token → retry; the token is reused for the same repo and fetched up front for another', async () => {
    const tokens = tokenRoute();
    const manifests = route(ORIGIN, /^\/v2\/.+\/manifests\/v1$/, (_n, req) =>
      req.headers.authorization?.startsWith('Bearer tok-')
        ? { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } }
        : { status: 401, headers: { 'www-authenticate': BEARER } },
    );
    const c = client();
    await c.getManifest('a/b', 'v1');
    await c.getManifest('a/b', 'v1');
    await c.getManifest('c/d', 'v1');
    // a/b: 401 + retry, then one request with the cached token; c/d: one request with a token fetched up front.
    expect(manifests.map((m) => m.headers.authorization)).toEqual([undefined, 'Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2']);
    expect(tokens).toHaveLength(2);
    expect(new URL(tokens[0]!.path, AUTH).searchParams.get('scope')).toBe('repository:a/b:pull');
    expect(new URL(tokens[1]!.path, AUTH).searchParams.get('scope')).toBe('repository:c/d:pull');
    expect(tokens[0]!.headers.authorization).toBeUndefined();
  });

  test('with credentials, the token request carries Basic auth', async () => {
    const tokens = tokenRoute();
    route(ORIGIN, '/v2/a/manifests/v1', (_n, req) =>
      req.headers.authorization ? { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } } : { status: 401, headers: { 'www-authenticate': BEARER } },
    );
    await client({ credential: { username: 'alice', password: 's3cret-pw' } }).getManifest('a', 'v1');
    expect(tokens[0]!.headers.authorization).toBe(`Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`);
  });

  test('a Basic challenge is answered with the credential', async () => {
    const basic = `Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`;
    const seen = route(ORIGIN, '/v2/a/manifests/v1', (_n, req) =>
      req.headers.authorization === basic ? { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } } : { status: 401, headers: { 'www-authenticate': 'Basic realm="r"' } },
    );
    const c = client({ credential: { username: 'alice', password: 's3cret-pw' } });
    await c.getManifest('a', 'v1');
    await c.getManifest('a', 'v1');
    expect(seen.map((s) => s.headers.authorization)).toEqual([undefined, basic, basic]);
  });

  test('a second 401 with a fresh token → HttpError naming the registry, with advice, without secrets', async () => {
    tokenRoute();
    route(ORIGIN, '/v2/private/manifests/v1', () => ({
      status: 401,
      body: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
      headers: { 'www-authenticate': BEARER, 'content-type': 'application/json' },
    }));
    const err = (await caught(client({ credential: { username: 'alice', password: 's3cret-pw' } }).getManifest('private', 'v1'))) as HttpError;
    expect(err).toBeInstanceOf(HttpError);
    expect(err.status).toBe(401);
    expect(err.message).toContain('registry.test');
    expect(err.message).toContain('refused the credentials');
    expect(err.message).toContain('UNAUTHORIZED');
    expect(err.hint).toMatch(/docker login registry\.test/);
    expect(err.hint).toMatch(/REGISTRISH_AUTH/);
    const all = `${err.message} ${err.hint} ${err.url}`;
    for (const secret of ['s3cret', 'tok-', Buffer.from('alice:s3cret-pw').toString('base64')]) expect(all).not.toContain(secret);
  });

  test('anonymous and refused: says the repository may not exist or needs credentials', async () => {
    tokenRoute();
    route(ORIGIN, '/v2/nope/manifests/v1', () => ({ status: 401, headers: { 'www-authenticate': BEARER } }), 'HEAD');
    const err = (await caught(client().headManifest('nope', 'v1'))) as HttpError;
    expect(err.message).toMatch(/does not exist, or registry\.test needs credentials/);
  });

  test('an expired cached token is refreshed', async () => {
    const tokens = tokenRoute();
    route(ORIGIN, '/v2/a/manifests/v1', (_n, req) =>
      req.headers.authorization ? { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } } : { status: 401, headers: { 'www-authenticate': BEARER } },
    );
    let now = 0;
    const c = client({ now: () => now });
    await c.getManifest('a', 'v1');
    now = 400_000; // past expires_in 300
    await c.getManifest('a', 'v1');
    expect(tokens).toHaveLength(2);
  });
});

describe('redirects', () => {
  test('to another origin: Authorization dropped, Range kept', async () => {
    tokenRoute();
    const reg = route(ORIGIN, `/v2/a/blobs/${DIGEST}`, (_n, req) =>
      req.headers.authorization ? { status: 307, headers: { location: `${CDN}/blob/abc?X-Amz-Signature=sig` } } : { status: 401, headers: { 'www-authenticate': BEARER } },
    );
    const cdn = route(CDN, /^\/blob\/abc/, () => ({ status: 206, body: 'world', headers: { 'content-range': 'bytes 6-10/11', 'content-length': '5' } }));
    const blob = await client().openBlob('a', DIGEST, { offset: 6 });
    expect(blob.status).toBe(206);
    expect(blob.contentLength).toBe(5);
    expect((await readAll(blob.body)).toString()).toBe('world');
    expect(reg[1]!.headers.authorization).toBe('Bearer tok-1');
    expect(cdn[0]!.headers.authorization).toBeUndefined();
    expect(cdn[0]!.headers.range).toBe('bytes=6-');
    expect(cdn[0]!.headers['accept-encoding']).toBe('identity');
  });

  test('relative Location on the same origin keeps Authorization', async () => {
    const seen = route(ORIGIN, /^\/v2\/a\/blobs\/|^\/storage\//, (_n, req) =>
      req.path.startsWith('/v2/') ? { status: 302, headers: { location: '/storage/xyz' } } : { status: 200, body: 'hi' },
    );
    route(ORIGIN, '/v2/a/manifests/v1', (_n, req) =>
      req.headers.authorization ? { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } } : { status: 401, headers: { 'www-authenticate': 'Basic realm="r"' } },
    );
    const c = client({ credential: { username: 'u', password: 'pw123456' } });
    await c.getManifest('a', 'v1'); // learn the Basic challenge
    const blob = await c.openBlob('a', DIGEST);
    expect((await readAll(blob.body)).toString()).toBe('hi');
    expect(seen.map((s) => s.path)).toEqual([`/v2/a/blobs/${DIGEST}`, '/storage/xyz']);
    expect(seen[1]!.headers.authorization).toMatch(/^Basic /);
  });

  test('a redirect loop fails with HttpError', async () => {
    route(ORIGIN, /^\/(v2\/a\/blobs\/.*|loop)$/, () => ({ status: 302, headers: { location: '/loop' } }));
    const err = await caught(client().openBlob('a', DIGEST));
    expect(err).toBeInstanceOf(HttpError);
    expect(err.message).toMatch(/redirect loop/);
  });

  test('too many redirects fail with HttpError', async () => {
    route(ORIGIN, /^\/(v2\/a\/blobs\/.*|hop\/\d+)$/, (n) => ({ status: 301, headers: { location: `/hop/${n}` } }));
    const err = await caught(client().openBlob('a', DIGEST));
    expect(err).toBeInstanceOf(HttpError);
    expect(err.message).toMatch(/more than 10 redirects/);
  });
});

describe('retries', () => {
  test('503 twice, then success', async () => {
    const seen = route(ORIGIN, '/v2/a/manifests/v1', (n) =>
      n < 2 ? { status: 503, body: 'busy' } : { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } },
    );
    expect((await client().getManifest('a', 'v1')).mediaType).toBe(OCI_MANIFEST);
    expect(seen).toHaveLength(3);
  });

  test('429 with Retry-After: 0, then success', async () => {
    const seen = route(ORIGIN, '/v2/a/manifests/v1', (n) =>
      n < 1 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 200, body: ociManifest, headers: { 'content-type': OCI_MANIFEST } },
    );
    await client().getManifest('a', 'v1');
    expect(seen).toHaveLength(2);
  });

  test('ECONNRESET, then success', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/v2/a/manifests/v1' }).replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    pool.intercept({ path: '/v2/a/manifests/v1' }).reply(200, ociManifest, { headers: { 'content-type': OCI_MANIFEST } });
    expect((await client().getManifest('a', 'v1')).bytes.toString()).toBe(ociManifest);
  });

  test('connection errors that outlast the retries → RegistrishError naming method and URL', async () => {
    mock
      .get(ORIGIN)
      .intercept({ path: '/v2/a/manifests/v1' })
      .replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
      .times(3);
    const err = await caught(client({ maxRetries: 2 }).getManifest('a', 'v1'));
    expect(err).toBeInstanceOf(RegistrishError);
    expect(err.message).toMatch(/GET https:\/\/registry\.test\/v2\/a\/manifests\/v1: request failed after 3 attempts \(.*ECONNREFUSED/);
  });

  test('no retry on 400 or 404', async () => {
    const bad = route(ORIGIN, '/v2/a/manifests/bad', () => ({ status: 400, body: '{"errors":[{"code":"TAG_INVALID","message":"bad tag"}]}' }));
    const missing = route(ORIGIN, '/v2/a/manifests/missing', () => ({ status: 404 }));
    const err = (await caught(client().getManifest('a', 'bad'))) as HttpError;
    expect(err.status).toBe(400);
    expect(err.message).toContain('TAG_INVALID: bad tag');
    await expect(client().getManifest('a', 'missing')).rejects.toBeInstanceOf(NotFoundError);
    expect(bad).toHaveLength(1);
    expect(missing).toHaveLength(1);
  });

  test('retries run out → HttpError with the status', async () => {
    const seen = route(ORIGIN, '/v2/a/manifests/v1', () => ({ status: 502, body: 'bad gateway' }));
    const err = (await caught(client({ maxRetries: 2 }).getManifest('a', 'v1'))) as HttpError;
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/502 Bad Gateway after 3 attempts/);
    expect(seen).toHaveLength(3);
  });
});

describe('transport: Retry-After', () => {
  function transport(sleeps: number[], maxRetries = 2) {
    return new Transport({ dispatcher: mock, maxRetries, retryBaseMs: 1, sleep: async (ms) => void sleeps.push(ms) });
  }

  test('seconds are honored', async () => {
    route(ORIGIN, '/x', (n) => (n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200, body: 'ok' }));
    const sleeps: number[] = [];
    const res = await transport(sleeps).request(`${ORIGIN}/x`);
    expect(res.status).toBe(200);
    expect(sleeps).toEqual([2000]);
  });

  test('an HTTP date is honored', async () => {
    const at = new Date(Date.now() + 5_000).toUTCString();
    route(ORIGIN, '/x', (n) => (n === 0 ? { status: 503, headers: { 'retry-after': at } } : { status: 200 }));
    const sleeps: number[] = [];
    await transport(sleeps).request(`${ORIGIN}/x`);
    expect(sleeps[0]).toBeGreaterThan(3_000);
    expect(sleeps[0]).toBeLessThanOrEqual(5_000);
  });

  test('longer than the cap: fail at once instead of waiting', async () => {
    const seen = route(ORIGIN, '/x', () => ({ status: 429, headers: { 'retry-after': '3600' } }));
    const sleeps: number[] = [];
    const err = (await caught(transport(sleeps).request(`${ORIGIN}/x`))) as HttpError;
    expect(err.status).toBe(429);
    expect(err.message).toMatch(/retry in 3600 s/);
    expect(err.hint).toMatch(/rate-limiting/);
    expect(seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  test('backoff grows exponentially with jitter', async () => {
    route(ORIGIN, '/x', () => ({ status: 503 }));
    const sleeps: number[] = [];
    const t = new Transport({ dispatcher: mock, maxRetries: 3, retryBaseMs: 100, sleep: async (ms) => void sleeps.push(ms) });
    await caught(t.request(`${ORIGIN}/x`));
    expect(sleeps).toHaveLength(3);
    sleeps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual((100 * 2 ** i) / 2);
      expect(ms).toBeLessThanOrEqual(100 * 2 ** i);
    });
  });

  test('parseRetryAfter', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT'))).toBe(60_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT'))).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  test('caller headers are case-insensitive; Accept-Encoding is always identity', async () => {
    const seen = route(ORIGIN, '/x', () => ({ status: 200 }));
    await new Transport({ dispatcher: mock }).request(`${ORIGIN}/x`, { headers: { 'Accept-Encoding': 'gzip', Range: 'bytes=1-' } });
    expect(seen[0]!.headers['accept-encoding']).toBe('identity');
    expect(seen[0]!.headers.range).toBe('bytes=1-');
  });
});

describe('blobs', () => {
  const content = Buffer.from('hello world');
  const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;

  test('streams the body; no Range at offset 0', async () => {
    const seen = route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 200, body: content, headers: { 'content-length': String(content.length) } }));
    const blob = await client().openBlob('a', digest);
    expect(blob.status).toBe(200);
    expect(blob.contentLength).toBe(11);
    expect(blob.contentEncoding).toBeUndefined();
    expect(await readAll(blob.body)).toEqual(content);
    expect(seen[0]!.headers.range).toBeUndefined();
  });

  test('a server that ignores Range answers 200: reported as such', async () => {
    route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 200, body: content }));
    const blob = await client().openBlob('a', digest, { offset: 5 });
    expect(blob.status).toBe(200);
    await readAll(blob.body);
  });

  test('a 206 for the wrong range is refused', async () => {
    route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 206, body: 'hello', headers: { 'content-range': 'bytes 0-4/11' } }));
    expect((await caught(client().openBlob('a', digest, { offset: 5 }))).message).toMatch(/range starting at 0/);
  });

  test('Content-Encoding is reported, not decoded', async () => {
    route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 200, body: 'gzipped?', headers: { 'content-encoding': 'gzip' } }));
    const blob = await client().openBlob('a', digest);
    expect(blob.contentEncoding).toBe('gzip');
    expect((await readAll(blob.body)).toString()).toBe('gzipped?');
  });

  test('404 → NotFoundError', async () => {
    route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 404 }));
    const err = await caught(client().openBlob('a', digest));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain(`registry.test/a: blob ${digest}`);
  });

  test('403 from storage → HttpError naming both URLs, signature masked', async () => {
    route(ORIGIN, `/v2/a/blobs/${digest}`, () => ({ status: 307, headers: { location: `${CDN}/b?X-Amz-Signature=deadbeef` } }));
    route(CDN, /^\/b/, () => ({ status: 403, body: '<Error><Code>AccessDenied</Code></Error>', headers: { 'content-type': 'application/xml' } }));
    const err = (await caught(client().openBlob('a', digest))) as HttpError;
    expect(err.status).toBe(403);
    expect(err.message).toContain('https://cdn.test/b?X-Amz-Signature=***');
    expect(err.message).not.toContain('deadbeef');
    expect(err.url).not.toContain('deadbeef');
  });
});

test('ping: 200, or 401 when we cannot authenticate', async () => {
  route(ORIGIN, '/v2/', () => ({ status: 200, body: '{}' }));
  expect(await client().ping()).toBe(200);
  await mock.close();
  mock = new MockAgent();
  mock.disableNetConnect();
  route(ORIGIN, '/v2/', () => ({ status: 401, headers: { 'www-authenticate': 'Basic realm="r"' } }));
  expect(await client().ping()).toBe(401);
});

describe('media types', () => {
  test('MANIFEST_ACCEPT lists all four manifest types', () => {
    expect(MANIFEST_ACCEPT.split(', ').sort()).toEqual([DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST].sort());
  });

  test('predicates strip parameters', () => {
    expect(isIndexType(`${DOCKER_MANIFEST_LIST}; charset=utf-8`)).toBe(true);
    expect(isIndexType(OCI_MANIFEST)).toBe(false);
    expect(isManifestType(` ${OCI_MANIFEST} `)).toBe(true);
    expect(isManifestType(OCI_INDEX)).toBe(false);
    expect(isKnownManifestType('application/json')).toBe(false);
    expect(isKnownManifestType(undefined)).toBe(false);
  });

  test.each<[string, string | object, string | undefined, string]>([
    ['own field wins', { mediaType: DOCKER_MANIFEST, config: {}, layers: [] }, OCI_MANIFEST, DOCKER_MANIFEST],
    ['fallback when absent', { schemaVersion: 2, manifests: [] }, `${DOCKER_MANIFEST_LIST}; charset=utf-8`, DOCKER_MANIFEST_LIST],
    ['generic fallback ignored, index by shape', '{"schemaVersion":2,"manifests":[]}', 'application/json', OCI_INDEX],
    ['manifest by shape', { schemaVersion: 2, config: { digest: 'x' }, layers: [] }, undefined, OCI_MANIFEST],
  ])('manifestMediaType: %s', (_n, doc, fallback, expected) => {
    expect(manifestMediaType(typeof doc === 'string' ? Buffer.from(doc) : doc, fallback)).toBe(expected);
  });

  test('manifestMediaType refuses schema 1, non-JSON and shapeless documents', () => {
    expect(() => manifestMediaType({ schemaVersion: 1, fsLayers: [] })).toThrow(/schema 1/);
    expect(() => manifestMediaType({ schemaVersion: 2 }, 'application/vnd.docker.distribution.manifest.v1+prettyjws')).toThrow(/schema 1/);
    expect(() => manifestMediaType(Buffer.from('nope'))).toThrow(/not valid JSON/);
    expect(() => manifestMediaType({ schemaVersion: 2 })).toThrow(/cannot tell the media type/);
  });
});
