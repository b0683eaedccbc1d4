import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { Authenticator, parseChallenges, pullScope, TokenCache } from '../src/sources/registry/auth.ts';
import type { Credential } from '../src/sources/registry/credentials.ts';
import { HttpError, RegistrishError } from '../src/util/errors.ts';
import { clearSecrets, redact } from '../src/util/redact.ts';
import { Transport } from '../src/http/transport.ts';

describe('parseChallenges', () => {
  test.each<[string, string, Array<{ scheme: string; params?: Record<string, string>; token68?: string }>]>([
    [
      'Docker Hub bearer',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
    ],
    [
      'comma inside a quoted scope',
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:a/b:pull,push' } }],
    ],
    ['basic', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['case-insensitive scheme and names', 'BEARER Realm="r", SERVICE=svc', [{ scheme: 'bearer', params: { realm: 'r', service: 'svc' } }]],
    ['escapes in quoted strings', String.raw`Basic realm="a \"quoted\" \\ realm"`, [{ scheme: 'basic', params: { realm: String.raw`a "quoted" \ realm` } }]],
    [
      'two challenges, spaces around = and commas',
      'Bearer realm = "https://t.example/token" , service="x", Basic realm="fallback"',
      [
        { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'x' } },
        { scheme: 'basic', params: { realm: 'fallback' } },
      ],
    ],
    [
      'token68 then a challenge',
      'Negotiate abc+/def==, Basic realm="x"',
      [
        { scheme: 'negotiate', token68: 'abc+/def==' },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['bare scheme', 'Negotiate', [{ scheme: 'negotiate', params: {} }]],
    ['unquoted token values', 'Bearer realm=https://t.example/token,service=reg', [{ scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'reg' } }]],
    ['empty', '', []],
  ])('%s', (_name, header, expected) => {
    const got = parseChallenges(header);
    expect(got).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(got[i]!.scheme).toBe(e.scheme);
      if (e.params) expect(got[i]!.params).toEqual(e.params);
      if (e.token68) expect(got[i]!.token68).toBe(e.token68);
    });
  });

  test('several header lines', () => {
    const got = parseChallenges(['Basic realm="a"', 'Bearer realm="b"']);
    expect(got.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
  });
});


const AUTH = 'https://auth.test';
const BEARER = `Bearer realm="${AUTH}/token",service="registry.test"`;

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

interface TokenCall {
  path: string;
  authorization?: string;
  method: string;
  body?: string;
}

/** A token endpoint that records its calls and hands out tok-1, tok-2, … */
function tokenServer(opts: { expiresIn?: number; field?: 'token' | 'access_token'; status?: number; method?: string } = {}): TokenCall[] {
  const calls: TokenCall[] = [];
  mock
    .get(AUTH)
    .intercept({ path: (p) => p.startsWith('/token'), method: opts.method ?? 'GET' })
    .reply((req) => {
      const h = req.headers as Record<string, string>;
      calls.push({ path: req.path, authorization: h.authorization, method: req.method, body: typeof req.body === 'string' ? req.body : undefined });
      if (opts.status) return { statusCode: opts.status, data: JSON.stringify({ details: 'nope' }), responseOptions: { headers: { 'content-type': 'application/json' } } };
      const doc: Record<string, unknown> = { [opts.field ?? 'token']: `tok-${calls.length}` };
      if (opts.expiresIn !== undefined) doc.expires_in = opts.expiresIn;
      return { statusCode: 200, data: JSON.stringify(doc), responseOptions: { headers: { 'content-type': 'application/json' } } };
    })
    .persist();
  return calls;
}

function authenticator(credential?: Credential, extra: { now?: () => number; insecure?: boolean; apiHost?: string } = {}): Authenticator {
  return new Authenticator({
    registry: 'registry.test',
    apiHost: extra.apiHost ?? 'registry.test',
    insecure: extra.insecure ?? false,
    credential,
    transport: new Transport({ dispatcher: mock, maxRetries: 1, retryBaseMs: 1 }),
    now: extra.now,
  });
}

function query(path: string): URLSearchParams {
  return new URL(path, AUTH).searchParams;
}

describe('Authenticator: bearer tokens', () => {
  test('anonymous token: GET realm?service&scope without Authorization', async () => {
    const calls = tokenServer();
    const auth = authenticator();
    expect(await auth.authorize(pullScope('a/b'))).toBeUndefined(); // nothing learnt yet: try anonymously
    const header = await auth.onUnauthorized(BEARER, pullScope('a/b'));
    expect(header).toBe('Bearer tok-1');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.authorization).toBeUndefined();
    expect(query(calls[0]!.path).get('service')).toBe('registry.test');
    expect(query(calls[0]!.path).getAll('scope')).toEqual(['repository:a/b:pull']);
  });

  test('received tokens are registered for redaction', async () => {
    tokenServer();
    expect(redact('Authorization: Bearer tok-1')).toBe('Authorization: Bearer tok-1');
    await authenticator().onUnauthorized(BEARER, pullScope('a/b'));
    expect(redact('Authorization: Bearer tok-1')).toBe('Authorization: Bearer ***');
  });

  test('with username/password: Basic credentials on the token request; access_token accepted', async () => {
    const calls = tokenServer({ field: 'access_token' });
    const auth = authenticator({ username: 'alice', password: 's3cret-pw' });
    expect(await auth.onUnauthorized(BEARER, pullScope('a/b'))).toBe('Bearer tok-1');
    expect(calls[0]!.authorization).toBe(`Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`);
  });

  test('with an identity token: OAuth2 refresh_token POST form', async () => {
    const calls = tokenServer({ method: 'POST', field: 'access_token' });
    const auth = authenticator({ identityToken: 'refresh-xyz-123' });
    expect(await auth.onUnauthorized(BEARER, pullScope('a/b'))).toBe('Bearer tok-1');
    const form = new URLSearchParams(calls[0]!.body);
    expect(form.get('grant_type')).toBe('refresh_token');
    expect(form.get('refresh_token')).toBe('refresh-xyz-123');
    expect(form.get('service')).toBe('registry.test');
    expect(form.get('scope')).toBe('repository:a/b:pull');
    expect(calls[0]!.authorization).toBeUndefined();
  });

  test('tokens are reused per scope; a new scope gets its own token', async () => {
    const calls = tokenServer();
    const auth = authenticator();
    await auth.onUnauthorized(BEARER, pullScope('a/b'));
    // The challenge is known now: later requests authorize up front, from the cache.
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-1');
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-1');
    expect(calls).toHaveLength(1);
    expect(await auth.authorize(pullScope('c/d'))).toBe('Bearer tok-2');
    expect(await auth.authorize(pullScope('c/d'))).toBe('Bearer tok-2');
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-1');
    expect(calls).toHaveLength(2);
  });

  test('concurrent requests for one scope share one token request', async () => {
    const calls = tokenServer();
    const auth = authenticator();
    await auth.onUnauthorized(BEARER, pullScope('x/y'));
    const headers = await Promise.all([1, 2, 3, 4].map(() => auth.authorize(pullScope('a/b'))));
    expect(new Set(headers)).toEqual(new Set(['Bearer tok-2']));
    expect(calls).toHaveLength(2);
  });

  test('honors expires_in and refreshes shortly before expiry', async () => {
    const calls = tokenServer({ expiresIn: 300 });
    let now = 1_000_000;
    const auth = authenticator(undefined, { now: () => now });
    await auth.onUnauthorized(BEARER, pullScope('a/b'));
    now += 200_000;
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-1');
    now += 75_000; // 275 s of 300: inside the refresh margin
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-2');
    expect(calls).toHaveLength(2);
  });

  test('without expires_in a token lives 60 s', async () => {
    const calls = tokenServer();
    let now = 0;
    const auth = authenticator(undefined, { now: () => now });
    await auth.onUnauthorized(BEARER, pullScope('a/b'));
    now = 50_000;
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-1');
    now = 55_000;
    expect(await auth.authorize(pullScope('a/b'))).toBe('Bearer tok-2');
    expect(calls).toHaveLength(2);
  });

  test('a refused token is dropped and a fresh one fetched', async () => {
    const calls = tokenServer();
    const auth = authenticator();
    const first = await auth.onUnauthorized(BEARER, pullScope('a/b'));
    const second = await auth.onUnauthorized(BEARER, pullScope('a/b'), first);
    expect(second).toBe('Bearer tok-2');
    expect(calls).toHaveLength(2);
  });

  test('the token server refusing the credentials → HttpError with a hint, no secret', async () => {
    tokenServer({ status: 401 });
    const auth = authenticator({ username: 'alice', password: 's3cret-pw' });
    const err = (await auth.onUnauthorized(BEARER, pullScope('a/b')).then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e,
    )) as HttpError;
    expect(err).toBeInstanceOf(HttpError);
    expect(err.status).toBe(401);
    expect(err.message).toContain('registry.test');
    expect(err.hint).toContain('docker login');
    expect(`${err.message} ${err.hint}`).not.toContain('s3cret');
  });

  test('a challenge without realm is an error', async () => {
    await expect(authenticator().onUnauthorized('Bearer service="x"', pullScope('a/b'))).rejects.toThrow(/no realm/);
  });

  test('never sends credentials to a plain-HTTP realm on another host', async () => {
    const auth = authenticator({ username: 'alice', password: 's3cret-pw' });
    const err = (await auth.onUnauthorized('Bearer realm="http://auth.example.com/token"', pullScope('a/b')).then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e,
    )) as Error;
    expect(err).toBeInstanceOf(RegistrishError);
    expect(err.message).toMatch(/plain-HTTP token realm/);
    expect(err.message).not.toContain('s3cret');
  });

  test('a plain-HTTP realm is fine anonymously and on loopback', async () => {
    mock.get('http://auth.example.com').intercept({ path: /^\/token/ }).reply(200, { token: 'anon-token' });
    expect(await authenticator().onUnauthorized('Bearer realm="http://auth.example.com/token"', pullScope('a/b'))).toBe('Bearer anon-token');
    mock.get('http://127.0.0.1:5001').intercept({ path: /^\/token/ }).reply(200, { token: 'local-token' });
    const auth = authenticator({ username: 'u', password: 'pw12345' }, { apiHost: '127.0.0.1:5000', insecure: true });
    expect(await auth.onUnauthorized('Bearer realm="http://127.0.0.1:5001/token"', pullScope('a/b'))).toBe('Bearer local-token');
  });
});

describe('Authenticator: Basic', () => {
  test('a Basic challenge is answered from the credential', async () => {
    const auth = authenticator({ username: 'alice', password: 's3cret-pw' });
    const expected = `Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`;
    expect(await auth.onUnauthorized('Basic realm="Registry"', pullScope('a/b'))).toBe(expected);
    // Known now: sent up front for every scope.
    expect(await auth.authorize(pullScope('c/d'))).toBe(expected);
    // The same answer refused again: nothing more to try.
    expect(await auth.onUnauthorized('Basic realm="Registry"', pullScope('a/b'), expected)).toBeUndefined();
  });

  test('Basic without a credential: nothing to answer with', async () => {
    expect(await authenticator().onUnauthorized('Basic realm="Registry"', pullScope('a/b'))).toBeUndefined();
  });

  test('Bearer is preferred when both are offered', async () => {
    tokenServer();
    const auth = authenticator({ username: 'alice', password: 's3cret-pw' });
    expect(await auth.onUnauthorized(`Basic realm="x", ${BEARER}`, pullScope('a/b'))).toBe('Bearer tok-1');
  });

  test('an unsupported scheme is a clear error', async () => {
    await expect(authenticator().onUnauthorized('Negotiate', pullScope('a/b'))).rejects.toThrow(/negotiate.*not support/);
  });
});

test('TokenCache keys ignore scope order', () => {
  expect(TokenCache.key('r', 's', ['a', 'b'])).toBe(TokenCache.key('r', 's', ['b', 'a']));
  expect(TokenCache.key('r', 's', ['a'])).not.toBe(TokenCache.key('r', undefined, ['a']));
});
