import { readErrorDetail } from '../../http/response.ts';
import type { Transport } from '../../http/transport.ts';
import { isLoopbackHost } from '../../model/reference.ts';
import { HttpError, RegistrishError } from '../../util/errors.ts';
import { addSecret, redactUrl } from '../../util/redact.ts';
import type { Credential } from './credentials.ts';

// Registry authentication: WWW-Authenticate parsing, Docker token auth (anonymous, Basic
// credentials, OAuth2 refresh token for identity tokens), Basic auth, and a token cache.
// The registry client asks for an Authorization header per scope and reports 401s here.

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`, … */
  scheme: string;
  /** Parameter names lower-cased; values unquoted and unescaped. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when the challenge has one instead of parameters. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * RFC 7235 `WWW-Authenticate`: one or more challenges, comma-separated, each a scheme followed
 * by auth-params (`name=token` or `name="quoted, \"escaped\""`) or a token68. Several header
 * lines may be passed as an array. Lenient: garbage is skipped rather than thrown on.
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const s = typeof header === 'string' ? header : header.join(', ');
  const out: Challenge[] = [];
  let i = 0;

  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const skipWsAndCommas = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end of an unterminated string)
    return v;
  };
  const readBare = (): string => {
    const start = i;
    while (i < s.length && s[i] !== ',' && s[i] !== ' ' && s[i] !== '\t') i++;
    return s.slice(start, i);
  };
  /**
   * At `name = value` (an auth-param), as opposed to the next challenge's scheme or a token68
   * (`abc==`: '=' padding followed by the end or a comma).
   */
  const atParam = (): boolean => {
    const save = i;
    const name = readToken();
    skipWs();
    let isParam = false;
    if (name !== '' && s[i] === '=') {
      i++;
      skipWs();
      isParam = i < s.length && s[i] !== '=' && s[i] !== ',';
    }
    i = save;
    return isParam;
  };
  /** A token68 runs to the end or to a comma (after optional trailing '='s and spaces). */
  const tryToken68 = (): string | undefined => {
    const save = i;
    while (i < s.length && TOKEN68_CHAR.test(s[i]!)) i++;
    if (i === save) return undefined;
    while (i < s.length && s[i] === '=') i++;
    const end = i;
    skipWs();
    if (i >= s.length || s[i] === ',') return s.slice(save, end);
    i = save;
    return undefined;
  };

  while (i < s.length) {
    skipWsAndCommas();
    const scheme = readToken();
    if (!scheme) {
      i++; // not a token character: skip it and resynchronise
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    skipWs();
    if (i >= s.length || s[i] === ',') {
      // a bare scheme, or params may still follow after the comma: handled by the loop below
    } else if (!atParam()) {
      const t68 = tryToken68();
      if (t68 !== undefined) {
        challenge.token68 = t68;
        continue;
      }
    }
    // auth-params, separated by commas; stop at something that is not `name=`.
    for (;;) {
      skipWsAndCommas();
      if (i >= s.length || !atParam()) break;
      const name = readToken().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      // Unquoted values should be tokens, but some servers send bare URLs: take up to the next comma.
      const value = s[i] === '"' ? readQuoted() : readBare();
      // First one wins on duplicates (RFC 7235 says each name appears once).
      if (!(name in challenge.params)) challenge.params[name] = value;
      skipWs();
    }
  }
  return out;
}

/** The scope a pull of `repo` needs. */
export function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}

interface CachedToken {
  token: string;
  /** Local clock: when to fetch a new one (shortly before expiry). */
  refreshAt: number;
}

/**
 * Bearer tokens keyed by (realm, service, scope). One per registry client; may be shared
 * between clients that use the same credential.
 */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();

  static key(realm: string, service: string | undefined, scopes: readonly string[]): string {
    return JSON.stringify([realm, service ?? '', [...scopes].sort()]);
  }

  get(key: string, now: number): string | undefined {
    const t = this.tokens.get(key);
    return t && now < t.refreshAt ? t.token : undefined;
  }

  set(key: string, token: string, refreshAt: number): void {
    this.tokens.set(key, { token, refreshAt });
  }

  /** Drops a token the registry refused (only if it is still the cached one). */
  invalidate(key: string, token: string): void {
    if (this.tokens.get(key)?.token === token) this.tokens.delete(key);
  }

  /** Runs `fetch` once for concurrent callers asking for the same key. */
  once(key: string, fetch: () => Promise<string>): Promise<string> {
    let p = this.inflight.get(key);
    if (!p) {
      p = fetch().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }
}

export interface AuthenticatorOptions {
  /** Registry name for messages (`docker.io`). */
  registry: string;
  /** host[:port] of the registry API: a plain-HTTP realm on that same host is allowed when `insecure`. */
  apiHost: string;
  insecure: boolean;
  /** A credential, or where to get one: asked once, when the registry first asks for authentication. */
  credential?: Credential | (() => Promise<Credential | undefined>);
  /** Why there is no credential (a credential helper that failed), for the hint of a refusal. */
  credentialProblem?: () => string | undefined;
  transport: Transport;
  cache?: TokenCache;
  /** Clock, replaceable in tests. */
  now?: () => number;
}

/** Default token lifetime when the server does not say (Docker token spec). */
const DEFAULT_EXPIRES_IN_S = 60;
/** Refresh this long before expiry at most (and never later than 90 % of the lifetime). */
const MAX_REFRESH_MARGIN_MS = 30_000;
const CLIENT_ID = 'registrish';

/**
 * Per-registry auth state. Remembers the registry's challenge after the first 401, so later
 * requests (other repositories too) send credentials up front instead of paying a 401 each.
 */
export class Authenticator {
  readonly registry: string;
  readonly credentialProblem: () => string | undefined;
  private resolved?: Credential;
  private loadCredential?: () => Promise<Credential | undefined>;
  private credentialLoad?: Promise<void>;
  private readonly apiHost: string;
  private readonly insecure: boolean;
  private readonly transport: Transport;
  private readonly cache: TokenCache;
  private readonly now: () => number;
  private challenge?: Challenge;

  constructor(opts: AuthenticatorOptions) {
    this.registry = opts.registry;
    this.apiHost = opts.apiHost.toLowerCase();
    this.insecure = opts.insecure;
    this.credentialProblem = opts.credentialProblem ?? (() => undefined);
    if (typeof opts.credential === 'function') this.loadCredential = opts.credential;
    else this.useCredential(opts.credential);
    this.transport = opts.transport;
    this.cache = opts.cache ?? new TokenCache();
    this.now = opts.now ?? Date.now;
  }

  /** The credential, once known (given, or loaded at the registry's first challenge). */
  get credential(): Credential | undefined {
    return this.resolved;
  }

  private useCredential(credential: Credential | undefined): void {
    this.resolved = credential;
    // Also when the credential did not come through loadCredentials.
    if (credential && 'password' in credential) {
      addSecret(credential.password);
      addSecret(basicValue(credential));
    } else if (credential) addSecret(credential.identityToken);
  }

  /** Loads a lazily given credential once; concurrent callers share the load. */
  private async ensureCredential(): Promise<void> {
    const load = this.loadCredential;
    if (!load) return;
    this.credentialLoad ??= load().then((c) => {
      this.useCredential(c);
      this.loadCredential = undefined;
    });
    await this.credentialLoad;
  }

  /**
   * The Authorization header to send for a request needing `scope`, from the challenge learnt
   * so far. Undefined before any challenge (the first request goes anonymous: many registries
   * need no auth) or when we have nothing to answer it with.
   */
  async authorize(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    return this.answer(this.challenge, scope, signal);
  }

  /**
   * Called after a 401. `rejected` is the Authorization header that was refused (if any): its
   * token is dropped from the cache. Returns the header to retry with, or undefined when there
   * is no challenge we can answer, or when the same answer was already refused.
   */
  async onUnauthorized(wwwAuthenticate: string | readonly string[] | undefined, scope: string, rejected?: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenges = parseChallenges(wwwAuthenticate);
    const chosen = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!chosen) {
      if (challenges.length > 0) {
        throw new RegistrishError(
          `${this.registry} asks for authentication by ${challenges.map((c) => c.scheme).join(', ')}, which registrish does not support (only Bearer tokens and Basic)`,
        );
      }
      return undefined;
    }
    this.challenge = chosen;
    if (rejected?.startsWith('Bearer ') && chosen.scheme === 'bearer') {
      this.cache.invalidate(this.tokenKey(chosen, scope), rejected.slice('Bearer '.length));
    }
    const header = await this.answer(chosen, scope, signal);
    return header !== undefined && header === rejected ? undefined : header;
  }

  private async answer(challenge: Challenge, scope: string, signal?: AbortSignal): Promise<string | undefined> {
    // Only now that the registry asks: a registry that needs none never runs a credential helper.
    await this.ensureCredential();
    if (challenge.scheme === 'basic') {
      return this.credential && 'password' in this.credential ? `Basic ${basicValue(this.credential)}` : undefined;
    }
    const key = this.tokenKey(challenge, scope);
    const cached = this.cache.get(key, this.now());
    if (cached) return `Bearer ${cached}`;
    const token = await this.cache.once(key, () => this.fetchToken(challenge, scope ? [scope] : [], key, signal));
    return `Bearer ${token}`;
  }

  private tokenKey(challenge: Challenge, scope: string): string {
    return TokenCache.key(challenge.params.realm ?? '', challenge.params.service, scope ? [scope] : []);
  }

  /** Docker token auth: GET realm?service=…&scope=… (or the OAuth2 POST with an identity token). */
  private async fetchToken(challenge: Challenge, scopes: readonly string[], key: string, signal?: AbortSignal): Promise<string> {
    const realm = this.realmUrl(challenge);
    const service = challenge.params.service;
    const cred = this.credential;
    const what = `${this.registry}: token request to ${redactUrl(realm)}`;

    let res;
    if (cred && 'identityToken' in cred) {
      // An identity token is an OAuth2 refresh token (what `docker login` stores for some
      // registries): exchange it by POSTing the form, as the Docker client does.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: CLIENT_ID });
      if (service) form.set('service', service);
      for (const s of scopes) form.append('scope', s);
      res = await this.transport.request(realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal,
      });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (cred) headers.authorization = `Basic ${basicValue(cred)}`;
      res = await this.transport.request(url, { method: 'GET', headers, signal });
    }

    if (res.status !== 200) {
      const detail = await readErrorDetail(res);
      const refused = res.status === 401 || res.status === 403;
      const oauthUnsupported = cred && 'identityToken' in cred && (res.status === 404 || res.status === 405);
      throw new HttpError(`${what} answered ${res.status}${detail ? ` (${detail})` : ''}`, res.status, redactUrl(res.url), {
        hint: oauthUnsupported
          ? `This token server does not accept OAuth2 refresh tokens; put "user:password" for ${this.registry} in REGISTRISH_AUTH instead.`
          : refused
            ? cred
              ? `The credentials for ${this.registry} were refused: run docker login ${this.registry} again, or check REGISTRISH_AUTH.`
              : `${this.registry} wants credentials${withProblem(this.credentialProblem())}: run docker login ${this.registry}, or set REGISTRISH_AUTH.`
            : undefined,
      });
    }

    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(await res.body.text()) as typeof doc;
    } catch {
      throw new RegistrishError(`${what}: the answer is not JSON`);
    }
    const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw new RegistrishError(`${what}: the answer has no token`);
    addSecret(token);

    const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_EXPIRES_IN_S;
    const lifetimeMs = expiresIn * 1000;
    const refreshAt = this.now() + lifetimeMs - Math.min(MAX_REFRESH_MARGIN_MS, lifetimeMs / 10);
    this.cache.set(key, token, refreshAt);
    return token;
  }

  private realmUrl(challenge: Challenge): URL {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistrishError(`${this.registry} asked for a Bearer token without saying where to get one (no realm)`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistrishError(`${this.registry} sent an invalid token realm: ${redactUrl(realm)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistrishError(`${this.registry} sent a token realm that is not HTTP(S): ${redactUrl(url)}`);
    }
    // Credentials travel to the realm: never in clear text across the network, unless the
    // realm is this very registry that the user already chose to reach over plain HTTP.
    if (this.credential && url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !(this.insecure && url.host.toLowerCase() === this.apiHost)) {
      throw new RegistrishError(
        `${this.registry} sent a plain-HTTP token realm (${redactUrl(url)}); registrish will not send credentials there unencrypted`,
        { hint: 'Serve the token endpoint over HTTPS, or remove the credentials for this registry to pull anonymously.' },
      );
    }
    return url;
  }
}

/** ` (the credential helper … failed …)`, or nothing. */
export function withProblem(problem: string | undefined): string {
  return problem ? ` (${problem})` : '';
}

function basicValue(cred: { username: string; password: string }): string {
  return Buffer.from(`${cred.username}:${cred.password}`).toString('base64');
}


