import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { nextLink } from '../../http/link.ts';
import { discard, dropBody, firstHeader, readCapped, readErrorDetail } from '../../http/response.ts';
import { statusText, Transport, type Method, type TransportResponse } from '../../http/transport.ts';
import { isValidDigest } from '../../model/digest.ts';
import { isKnownManifestType, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, manifestMediaType, OCI_INDEX, stripParams } from '../../model/media-types.ts';
import { isValidRepositoryName, isValidTag } from '../../model/reference.ts';
import { HttpError, NotFoundError, RegistrishError } from '../../util/errors.ts';
import { redactUrl } from '../../util/redact.ts';
import { Authenticator, pullScope, withProblem, type TokenCache } from './auth.ts';
import type { Credential } from './credentials.ts';

// A read-only client for the OCI distribution API of one upstream registry: HEAD/GET manifests,
// open blobs as streams. Auth and HTTP mechanics live in auth.ts and transport.ts.

export interface RegistryClientOptions {
  /** For messages and credentials: 'docker.io', '127.0.0.1:5000'. */
  registry: string;
  /** host[:port] of the API: 'registry-1.docker.io'. */
  apiHost: string;
  /** Plain HTTP. */
  insecure: boolean;
  /** A credential, or where to get one (asked once, at the registry's first challenge). */
  credential?: Credential | (() => Promise<Credential | undefined>);
  /** Why there is no credential (a credential helper that failed): named when the registry refuses us. */
  credentialProblem?: () => string | undefined;
  /** Shared Agent or MockAgent. */
  dispatcher?: Dispatcher;
  /** Share tokens between clients of the same registry and credential. */
  tokenCache?: TokenCache;
  maxRetries?: number;
  retryBaseMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Clock for token expiry (tests). */
  now?: () => number;
}

export interface ManifestHead {
  /** Docker-Content-Digest: untrusted, a hint only. */
  digest?: string;
  mediaType?: string;
  size?: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  /** The document's own media type (else the Content-Type's, else inferred from its shape). */
  mediaType: string;
  /** Docker-Content-Digest as sent: untrusted. */
  headerDigest?: string;
}

export interface OpenedRegistryBlob {
  status: 200 | 206;
  body: Readable;
  contentLength?: number;
  /** Set only when the server sent a Content-Encoding other than identity. */
  contentEncoding?: string;
  /** Final URL after redirects, credentials stripped (for messages). */
  url: string;
}



/** Pages of a referrers answer we follow before calling the registry hostile. */
const MAX_REFERRER_PAGES = 50;
/** Tags asked per tags/list page (Docker Hub and GHCR answer at most 1000 or 100 anyway). */
const TAG_PAGE_SIZE = 1000;
/** Pages of tags/list: 1000 pages of 100 is 100 000 tags, far beyond any real repository. */
const MAX_TAG_PAGES = 1000;

export class RegistryClient {
  readonly registry: string;
  private readonly base: string;
  private readonly transport: Transport;
  private readonly auth: Authenticator;

  /** A credential was given or loaded for this registry (so requests may have carried it). */
  get usedCredentials(): boolean {
    return this.auth.credential !== undefined;
  }

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    this.base = `${opts.insecure ? 'http' : 'https'}://${opts.apiHost}/v2/`;
    this.transport = new Transport({
      dispatcher: opts.dispatcher,
      maxRetries: opts.maxRetries,
      retryBaseMs: opts.retryBaseMs,
      headersTimeoutMs: opts.headersTimeoutMs,
      bodyTimeoutMs: opts.bodyTimeoutMs,
    });
    this.auth = new Authenticator({
      registry: opts.registry,
      apiHost: opts.apiHost,
      insecure: opts.insecure,
      credential: opts.credential,
      credentialProblem: opts.credentialProblem,
      transport: this.transport,
      cache: opts.tokenCache,
      now: opts.now,
    });
  }

  /** Closes the connection pool if this client created it (no `dispatcher` given); a shared one is left alone. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** `GET /v2/`: the API version check. Resolves to the final status (200, or 401 if we could not authenticate). */
  async ping(signal?: AbortSignal): Promise<number> {
    const url = this.base;
    const res = await this.send('GET', url, { scope: '', what: `${this.registry}: API check`, signal, allowUnauthorized: true });
    await discard(res.body);
    if (res.status === 200 || res.status === 401) return res.status;
    throw new HttpError(`${this.registry}: ${redactUrl(url)} answered ${res.status} ${statusText(res.status)}; is this a container registry?`, res.status, redactUrl(url));
  }

  /** Where a tag (or digest) points, without the body. Undefined on 404. */
  async headManifest(repo: string, ref: string, signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const url = this.manifestUrl(repo, ref);
    const what = `${this.registry}/${repo}${refSuffix(ref)}`;
    const res = await this.send('HEAD', url, { scope: pullScope(repo), headers: { accept: MANIFEST_ACCEPT }, what, signal });
    await discard(res.body);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.unexpected(res, 'HEAD', what, url);
    const length = Number(firstHeader(res.headers, 'content-length'));
    return {
      digest: firstHeader(res.headers, 'docker-content-digest') || undefined,
      mediaType: stripParams(firstHeader(res.headers, 'content-type')),
      size: Number.isSafeInteger(length) && length > 0 ? length : undefined,
    };
  }

  /** A manifest's bytes, buffered (with a cap). NotFoundError on 404. */
  async getManifest(repo: string, ref: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const maxBytes = opts.maxBytes ?? MAX_MANIFEST_BYTES;
    const url = this.manifestUrl(repo, ref);
    const what = `${this.registry}/${repo}${refSuffix(ref)}`;
    const res = await this.send('GET', url, { scope: pullScope(repo), headers: { accept: MANIFEST_ACCEPT }, what, signal: opts.signal });
    if (res.status === 404) {
      await discard(res.body);
      throw new NotFoundError(`${what}: manifest not found`, { hint: 'Check the repository name and tag (or digest) in images.json.' });
    }
    if (res.status !== 200) throw await this.unexpected(res, 'GET', what, url);

    const contentType = stripParams(firstHeader(res.headers, 'content-type'));
    const encoding = contentEncoding(res);
    if (encoding) {
      dropBody(res.body);
      throw new RegistrishError(`${what}: the registry sent the manifest with Content-Encoding "${encoding}" although we asked for identity (${redactUrl(res.url)})`);
    }
    if (contentType === 'text/html') {
      dropBody(res.body);
      throw new RegistrishError(`${what}: ${redactUrl(res.url)} answered with an HTML page instead of a manifest`, {
        hint: 'A proxy, captive portal or login page is probably in the way; check the registry address and network.',
      });
    }
    const declared = Number(firstHeader(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > maxBytes) {
      dropBody(res.body);
      throw tooLarge(what, maxBytes);
    }
    const bytes = await readCapped(res.body, maxBytes, () => tooLarge(what, maxBytes));

    if (!isKnownManifestType(contentType) && !isJsonObject(bytes)) {
      throw new RegistrishError(`${what}: the registry answered ${contentType ? `"${contentType}"` : 'without a Content-Type'} and a body that is not a JSON manifest (${redactUrl(res.url)})`);
    }
    let mediaType: string;
    try {
      mediaType = manifestMediaType(bytes, isKnownManifestType(contentType) ? contentType : undefined);
    } catch (err) {
      if (err instanceof RegistrishError) throw new RegistrishError(`${what}: ${err.message}`, { hint: err.hint, cause: err });
      throw err;
    }
    return { bytes, mediaType, headerDigest: firstHeader(res.headers, 'docker-content-digest') || undefined };
  }

  /**
   * Every tag of a repository (`GET /v2/<repo>/tags/list`), following `Link: <…>; rel="next"`
   * pages, asked `n` at a time. Pages are same-origin, never repeat, and at most `maxPages`.
   */
  async listTags(repo: string, opts: { pageSize?: number; maxPages?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const what = `${this.registry}/${repo}: tags/list`;
    const first = new URL(`${this.repoUrl(repo)}/tags/list`);
    first.searchParams.set('n', String(opts.pageSize ?? TAG_PAGE_SIZE));
    const tags: string[] = [];
    await this.pages(repo, first, { what, accept: 'application/json', maxPages: opts.maxPages ?? MAX_TAG_PAGES, signal: opts.signal }, (res, doc) => {
      if (res === 'absent') throw new NotFoundError(`${what}: the repository is not found`, { hint: 'Check the repository in images.json.' });
      const list = (doc as { tags?: unknown } | null)?.tags;
      // A repository without tags may answer `"tags": null`.
      if (list !== null && list !== undefined && !Array.isArray(list)) throw new RegistrishError(`${what}: the answer has no "tags" list`);
      for (const t of list ?? []) if (isValidTag(t)) tags.push(t);
    });
    return [...new Set(tags)];
  }

  /**
   * The referrers of `digest` (OCI 1.1 referrers API), every page (`Link: <…>; rel="next"`).
   * Undefined when the registry does not implement the API (it answers 404, 400 or 405): the caller
   * then reads the referrers tag schema (`sha256-<hex>`). Entries are untrusted: the caller checks them.
   */
  async getReferrers(repo: string, digest: string, opts: { signal?: AbortSignal } = {}): Promise<unknown[] | undefined> {
    if (!isValidDigest(digest)) throw new RegistrishError(`${this.registry}/${repo}: invalid digest "${digest}"`);
    const what = `${this.registry}/${repo}: referrers of ${digest}`;
    const entries: unknown[] = [];
    let supported = true;
    await this.pages(repo, new URL(`${this.repoUrl(repo)}/referrers/${digest}`), { what, accept: OCI_INDEX, maxPages: MAX_REFERRER_PAGES, signal: opts.signal }, (res, doc) => {
      if (res === 'absent') return void (supported = false);
      const manifests = (doc as { manifests?: unknown } | null)?.manifests;
      if (!Array.isArray(manifests)) throw new RegistrishError(`${what}: the answer is not an image index (no "manifests" list)`);
      entries.push(...manifests);
    });
    return supported ? entries : undefined;
  }

  /**
   * GETs `first` and every page its `Link: <…>; rel="next"` headers lead to, handing each answer's
   * JSON to `take`. A hostile registry can point anywhere and loop forever: pages are same-origin,
   * never repeat, and at most `maxPages`. A first answer of 404, 400 or 405 reaches `take` as 'absent'.
   */
  private async pages(
    repo: string,
    first: URL,
    o: { what: string; accept: string; maxPages: number; signal?: AbortSignal },
    take: (res: 'page' | 'absent', doc: unknown) => void,
  ): Promise<void> {
    const seen = new Set<string>();
    for (let url: URL | undefined = first; url; ) {
      if (seen.size >= o.maxPages) throw new RegistrishError(`${o.what}: more than ${o.maxPages} pages; refusing to read on`, { hint: 'A registry that pages forever is broken or hostile.' });
      if (seen.has(url.href)) throw new RegistrishError(`${o.what}: the registry's Link header loops back to ${redactUrl(url)}`);
      if (url.origin !== first.origin) throw new RegistrishError(`${o.what}: the registry's Link header points to another origin (${redactUrl(url)})`);
      seen.add(url.href);
      const res = await this.send('GET', url.href, { scope: pullScope(repo), headers: { accept: o.accept }, what: o.what, signal: o.signal });
      if (seen.size === 1 && (res.status === 404 || res.status === 400 || res.status === 405)) {
        await discard(res.body);
        return take('absent', undefined);
      }
      if (res.status !== 200) throw await this.unexpected(res, 'GET', o.what, url.href);
      const bytes = await readCapped(res.body, MAX_MANIFEST_BYTES, () => tooLarge(o.what, MAX_MANIFEST_BYTES));
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new RegistrishError(`${o.what}: the answer is not JSON (${redactUrl(res.url)})`);
      }
      take('page', doc);
      url = nextLink(res.headers['link'], res.url);
    }
  }

  /**
   * A blob as a stream, from `offset` on (Range request when > 0). Status 200 after a Range
   * request means the server ignored it and sends everything: the caller starts over.
   * The caller hashes and verifies; nothing is buffered here.
   */
  async openBlob(repo: string, digest: string, opts: { offset?: number; signal?: AbortSignal } = {}): Promise<OpenedRegistryBlob> {
    const offset = opts.offset ?? 0;
    if (!isValidDigest(digest)) throw new RegistrishError(`${this.registry}/${repo}: invalid blob digest "${digest}"`);
    const url = `${this.repoUrl(repo)}/blobs/${digest}`;
    const what = `${this.registry}/${repo}: blob ${digest}`;
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.send('GET', url, { scope: pullScope(repo), headers, what, signal: opts.signal });
    if (res.status === 404) {
      await discard(res.body);
      throw new NotFoundError(`${what}: not found on the registry`, { hint: 'The image refers to a blob the registry no longer has; push the image again.' });
    }
    if (res.status !== 200 && res.status !== 206) throw await this.unexpected(res, 'GET', what, url);
    if (res.status === 206) {
      // A 206 for a different range would splice wrong bytes into the hash.
      const start = /^bytes\s+(\d+)-/i.exec(firstHeader(res.headers, 'content-range') ?? '')?.[1];
      if (start !== undefined && Number(start) !== offset) {
        dropBody(res.body);
        throw new HttpError(`${what}: asked for bytes from ${offset} on, the registry sent a range starting at ${start}`, 206, redactUrl(res.url));
      }
    }
    const length = Number(firstHeader(res.headers, 'content-length'));
    return {
      status: res.status,
      body: res.body,
      contentLength: Number.isSafeInteger(length) && length >= 0 ? length : undefined,
      contentEncoding: contentEncoding(res),
      url: redactUrl(res.url),
    };
  }

  /**
   * One request with the auth dance: credentials we already know to be needed go up front;
   * on a 401 we answer the challenge and retry once; a second 401 is final.
   */
  private async send(
    method: Method,
    url: string,
    o: { scope: string; what: string; headers?: Record<string, string>; signal?: AbortSignal; allowUnauthorized?: boolean },
  ): Promise<TransportResponse> {
    const authorization = await this.auth.authorize(o.scope, o.signal);
    let res = await this.transport.request(url, { method, headers: { ...o.headers, authorization }, signal: o.signal });
    // A 401 from elsewhere (a redirect target) is not this registry's challenge: leave it to the caller.
    if (res.status !== 401 || new URL(res.url).origin !== new URL(url).origin) return res;

    const challenge = res.headers['www-authenticate'];
    // The registry's reason (e.g. "UNAUTHORIZED: authentication required") for the error below.
    let detail = method === 'HEAD' ? undefined : await readErrorDetail(res);
    await discard(res.body);
    const retryWith = await this.auth.onUnauthorized(challenge, o.scope, authorization, o.signal);
    if (retryWith !== undefined) {
      res = await this.transport.request(url, { method, headers: { ...o.headers, authorization: retryWith }, signal: o.signal });
      if (res.status !== 401) return res;
      if (method !== 'HEAD') detail = (await readErrorDetail(res)) ?? detail;
      await discard(res.body);
    }
    if (o.allowUnauthorized) return res;
    throw this.unauthorized(method, url, o.what, detail);
  }

  private unauthorized(method: Method, url: string, what: string, detail: string | undefined): HttpError {
    const cred = this.auth.credential;
    const login = `run docker login ${this.registry}, or set REGISTRISH_AUTH='{"${this.registry}":"user:token"}'`;
    const message = cred
      ? `${what}: ${this.registry} refused the credentials we have for it`
      : `${what}: access denied; the repository does not exist, or ${this.registry} needs credentials and we have none${withProblem(this.auth.credentialProblem())}`;
    return new HttpError(`${message} (${method} ${redactUrl(url)} → 401${detail ? `: ${detail}` : ''})`, 401, redactUrl(url), {
      hint: cred
        ? `Check that the credentials for ${this.registry} are current and may read this repository; ${login}.`
        : `Check the repository name; if it is private, ${login}.`,
    });
  }

  /** Any status we have no better plan for. Consumes the body for a short reason. */
  private async unexpected(res: TransportResponse, method: Method, what: string, url: string): Promise<HttpError> {
    const detail = method === 'HEAD' ? undefined : await readErrorDetail(res);
    await discard(res.body);
    const hint =
      res.status === 403
        ? `${this.registry} denied access; check the credentials for it (docker login / REGISTRISH_AUTH) and that they may read this repository.`
        : undefined;
    const where = res.url === url ? redactUrl(url) : `${redactUrl(url)} → ${redactUrl(res.url)}`;
    return new HttpError(`${what}: ${method} ${where} answered ${res.status} ${statusText(res.status)}${detail ? ` (${detail})` : ''}`, res.status, redactUrl(res.url), { hint });
  }

  private repoUrl(repo: string): string {
    if (!isValidRepositoryName(repo)) throw new RegistrishError(`${this.registry}: invalid repository name "${repo}"`);
    return `${this.base}${repo}`;
  }

  private manifestUrl(repo: string, ref: string): string {
    if (!isValidTag(ref) && !isValidDigest(ref)) throw new RegistrishError(`${this.registry}/${repo}: invalid tag or digest "${ref}"`);
    return `${this.repoUrl(repo)}/manifests/${ref}`;
  }
}

function refSuffix(ref: string): string {
  return ref.includes(':') ? `@${ref}` : `:${ref}`;
}

function contentEncoding(res: TransportResponse): string | undefined {
  const enc = firstHeader(res.headers, 'content-encoding')?.trim().toLowerCase();
  return enc && enc !== 'identity' ? enc : undefined;
}

function tooLarge(what: string, maxBytes: number): RegistrishError {
  return new RegistrishError(`${what}: the manifest is larger than ${maxBytes} bytes; refusing to buffer it`, {
    hint: 'Manifests are small JSON documents; the registry probably sent something else.',
  });
}

function isJsonObject(bytes: Buffer): boolean {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
