// A real upstream registry (distribution 2.8, /usr/bin/docker-registry) on 127.0.0.1, optionally
// behind htpasswd (bcrypt) or token auth (an RS256 JWT issuer running inside the test process).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { freePort, makeTempDir, removeDir, run, spawnDaemon, type Daemon } from './procs.ts';

export type RegistryAuth =
  | { kind: 'htpasswd'; user: string; pass: string }
  | { kind: 'token'; user: string; pass: string };

export interface StartRegistryOptions {
  /** Filesystem storage root; several registries may share one (push through one, read through others). */
  storageDir: string;
  auth?: RegistryAuth;
  /** Registry binary; default docker-registry (Debian's distribution 2.8). */
  bin?: string;
  timeoutMs?: number;
  /**
   * The in-memory blob descriptor cache of distribution's stock config (Debian ships it on). Off for
   * the tests, which change storage under the registry's feet; on for the benchmark.
   */
  descriptorCache?: boolean;
}

export interface UpstreamRegistry {
  /** '127.0.0.1:PORT' — what goes in an image reference. */
  host: string;
  /** 'http://127.0.0.1:PORT' */
  url: string;
  port: number;
  storageDir: string;
  auth?: RegistryAuth;
  logFile: string;
  /** Token auth only: the issuer's realm URL ('http://127.0.0.1:PORT/token'). */
  realm?: string;
  /** Token auth only: how many requests the issuer has answered (any status). */
  tokenRequests?: () => number;
  /** Token auth only: every bearer token the issuer has handed out (for credential-leak checks). */
  issuedTokens?: () => string[];
  stop(): Promise<void>;
}

export const TOKEN_SERVICE = 'registrish-test';
export const TOKEN_ISSUER = 'registrish-test-issuer';
const HTTP_SECRET = 'registrish-test-http-secret-0123456789';

export async function startRegistry(opts: StartRegistryOptions): Promise<UpstreamRegistry> {
  const dir = makeTempDir('rsh-reg-');
  fs.mkdirSync(opts.storageDir, { recursive: true });
  let issuer: TokenIssuer | undefined;
  try {
    let authYaml = '';
    if (opts.auth?.kind === 'htpasswd') {
      const file = path.join(dir, 'htpasswd');
      await run('htpasswd', ['-Bbc', file, opts.auth.user, opts.auth.pass]);
      authYaml = `auth:\n  htpasswd:\n    realm: registrish-test\n    path: ${file}\n`;
    } else if (opts.auth?.kind === 'token') {
      issuer = await startTokenIssuer(dir, opts.auth.user, opts.auth.pass);
      authYaml =
        `auth:\n  token:\n    realm: ${issuer.realm}\n    service: ${TOKEN_SERVICE}\n` +
        `    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${issuer.certFile}\n`;
    }
    // The port is picked before the registry binds it: retry if somebody else got it first.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const logFile = path.join(dir, `registry-${attempt}.log`);
      const configFile = path.join(dir, 'config.yml');
      fs.writeFileSync(
        configFile,
        [
          'version: 0.1',
          'log:',
          '  level: warn',
          '  formatter: text',
          '  accesslog:',
          '    disabled: true',
          'storage:',
          ...(opts.descriptorCache ? ['  cache:', '    blobdescriptor: inmemory'] : []),
          '  filesystem:',
          `    rootdirectory: ${opts.storageDir}`,
          '  delete:',
          '    enabled: true',
          '  maintenance:',
          '    uploadpurging:',
          '      enabled: false',
          'http:',
          `  addr: 127.0.0.1:${port}`,
          `  secret: ${HTTP_SECRET}`,
          '  headers:',
          '    X-Content-Type-Options: [nosniff]',
          '',
        ].join('\n') + authYaml,
      );
      const url = `http://127.0.0.1:${port}`;
      let daemon: Daemon;
      try {
        daemon = await spawnDaemon(opts.bin ?? 'docker-registry', ['serve', configFile], {
          logFile,
          name: `docker-registry(${opts.auth?.kind ?? 'no-auth'})`,
          timeoutMs: opts.timeoutMs ?? 20_000,
          ready: async () => {
            const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
            await res.arrayBuffer();
            return res.status === 200 || res.status === 401;
          },
        });
      } catch (e) {
        if (attempt < 3 && /address already in use/i.test(String(e))) continue;
        throw e;
      }
      const iss = issuer;
      return {
        host: `127.0.0.1:${port}`,
        url,
        port,
        storageDir: opts.storageDir,
        auth: opts.auth,
        logFile,
        realm: iss?.realm,
        tokenRequests: iss ? () => iss.count() : undefined,
        issuedTokens: iss ? () => iss.issued() : undefined,
        async stop() {
          await daemon.stop();
          await iss?.close();
          removeDir(dir);
        },
      };
    }
  } catch (e) {
    await issuer?.close();
    removeDir(dir);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Token issuer (Docker registry token auth, as distribution 2.8 verifies it: RS256 JWT whose
// header carries the signing cert in x5c, the cert listed in auth.token.rootcertbundle).

interface TokenIssuer {
  realm: string;
  certFile: string;
  count(): number;
  issued(): string[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

async function startTokenIssuer(dir: string, user: string, pass: string): Promise<TokenIssuer> {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=registrish-test',
    '-keyout', keyFile, '-out', certFile,
  ]);
  const key = fs.readFileSync(keyFile, 'utf8');
  const x5c = fs.readFileSync(certFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  let requests = 0;
  const issued: string[] = [];

  const sign = (sub: string, scopes: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((s) => {
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      if (first < 0 || last <= first) return [];
      return [{ type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',').filter(Boolean) }];
    });
    const header = { typ: 'JWT', alg: 'RS256', x5c: [x5c] };
    const claims = { iss: TOKEN_ISSUER, sub, aud: TOKEN_SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(crypto.createSign('RSA-SHA256').update(input).sign(key))}`;
  };

  const server = http.createServer(async (req, res) => {
    requests++;
    const u = new URL(req.url ?? '/', 'http://x');
    let body = '';
    for await (const chunk of req) body += chunk;
    // GET with Basic auth (docker, containers/image) or POST OAuth2 password grant (containerd).
    const form = req.method === 'POST' ? new URLSearchParams(body) : undefined;
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const [bu, bp] = basic ? Buffer.from(basic[1], 'base64').toString().split(/:(.*)/s) : [];
    const ok = form?.get('grant_type') === 'password'
      ? form.get('username') === user && form.get('password') === pass
      : bu === user && bp === pass;
    if (u.pathname !== '/token' || !ok) {
      res.writeHead(u.pathname !== '/token' ? 404 : 401, {
        'Content-Type': 'application/json',
        'WWW-Authenticate': 'Basic realm="registrish-test-token"',
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    const scopes = [...u.searchParams.getAll('scope'), ...(form?.getAll('scope') ?? [])].flatMap((s) => s.split(' ')).filter(Boolean);
    const token = sign(user, scopes);
    issued.push(token);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile,
    count: () => requests,
    issued: () => [...issued],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Client side of the auth dance (for tests talking to the upstream over HTTP).

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (one challenge). */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\S+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1], params };
}

/** Gets a bearer token from a Bearer challenge's realm with Basic credentials. */
export async function fetchToken(
  challenge: Challenge,
  creds: { user: string; pass: string },
  scope = challenge.params.scope,
): Promise<string> {
  const u = new URL(challenge.params.realm);
  if (challenge.params.service) u.searchParams.set('service', challenge.params.service);
  if (scope) u.searchParams.set('scope', scope);
  const res = await fetch(u, {
    headers: { Authorization: `Basic ${Buffer.from(`${creds.user}:${creds.pass}`).toString('base64')}` },
  });
  if (res.status !== 200) throw new Error(`token endpoint ${u} answered ${res.status}: ${await res.text()}`);
  const j = (await res.json()) as { token?: string; access_token?: string };
  const t = j.token ?? j.access_token;
  if (!t) throw new Error(`token endpoint ${u} returned no token`);
  return t;
}

/**
 * fetch() against an upstream, answering its challenge once: Basic for htpasswd, Bearer
 * (token from the realm) for token auth. Without creds it is a plain fetch.
 */
export async function fetchWithAuth(
  url: string,
  init: RequestInit = {},
  creds?: { user: string; pass: string },
): Promise<Response> {
  const first = await fetch(url, init);
  if (first.status !== 401 || !creds) return first;
  const ch = parseChallenge(first.headers.get('www-authenticate'));
  await first.arrayBuffer();
  if (!ch) return first;
  const headers = new Headers(init.headers);
  if (ch.scheme.toLowerCase() === 'basic') {
    headers.set('Authorization', `Basic ${Buffer.from(`${creds.user}:${creds.pass}`).toString('base64')}`);
  } else {
    headers.set('Authorization', `Bearer ${await fetchToken(ch, creds)}`);
  }
  return fetch(url, { ...init, headers });
}

export interface AuthUpstreams {
  /** htpasswd (Basic) auth. */
  basic: UpstreamRegistry;
  /** Token auth, its issuer in this process. */
  token: UpstreamRegistry;
  /** A transparent proxy in front of `token` whose 401s point at itself for /token: faults reach token requests too. */
  tokProxy: import('./fault-proxy.ts').FaultProxy;
  stop(): Promise<void>;
}

/** An htpasswd upstream and a token upstream sharing `storageDir`, and a proxy in front of the token one. */
export async function startAuthUpstreams(storageDir: string, basicCred: { user: string; pass: string }, tokenCred: { user: string; pass: string }): Promise<AuthUpstreams> {
  const { startFaultProxy } = await import('./fault-proxy.ts');
  const [basic, token] = await Promise.all([
    startRegistry({ storageDir, auth: { kind: 'htpasswd', ...basicCred } }),
    startRegistry({ storageDir, auth: { kind: 'token', ...tokenCred } }),
  ]);
  const tokProxy = await startFaultProxy({ target: token.url, realm: token.realm });
  return {
    basic,
    token,
    tokProxy,
    async stop() {
      await tokProxy.close();
      await Promise.all([basic.stop(), token.stop()]);
    },
  };
}
