import type { Readable } from 'node:stream';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { Agent, request } from './undici.ts';
import { HttpError, RegistrishError } from '../util/errors.ts';
import { redact, redactUrl } from '../util/redact.ts';
import { packageVersion } from '../util/version.ts';
import { discard, firstHeader, readErrorDetail, type ResponseBody, type ResponseHeaders } from './response.ts';

// The HTTP layer under the registry client, the token fetcher and the S3 client: retries with
// backoff, manual redirects (so we decide which headers cross origins), identity encoding, timeouts.
// It knows nothing about registries or auth; statuses other than retryable ones are returned.

export type Method = 'GET' | 'HEAD' | 'POST';
/** Methods only the S3 client sends (uploads and deletes). */
export type WriteMethod = 'PUT' | 'DELETE';

/**
 * A body produced afresh for every attempt (retries, redirects): a file re-opened as a stream,
 * so a large upload is never buffered to be re-sendable.
 */
export type BodyFactory = () => Readable;

/** What a `prepare` hook sees of the attempt about to be sent. */
export interface PreparedRequest {
  method: Method | WriteMethod;
  url: URL;
  /** The caller's headers, lower-case names (without the transport's User-Agent and Accept-Encoding). */
  headers: Record<string, string>;
  /** False once a 303 dropped the body: the payload is then empty. */
  hasBody: boolean;
}

/** Retry and timeout settings a build may override (tests shorten them to run fast). */
export interface HttpTuning {
  /** Retries after the first attempt of a request (retryable statuses, connection errors). Default 4. */
  maxRetries?: number;
  /** First backoff delay, doubled each retry. Default 500 ms. */
  retryBaseMs?: number;
  /** Time to wait for response headers. Default 30 s. */
  headersTimeoutMs?: number;
  /** Longest silence while reading a body. Default 60 s. */
  bodyTimeoutMs?: number;
  /** First delay before re-opening a blob whose body failed mid-way (resumed with Range). Default 500 ms. */
  blobRetryDelayMs?: number;
}

export interface TransportOptions {
  /** Shared Agent (one per build) or a MockAgent; a private Agent otherwise (closed by close()). */
  dispatcher?: Dispatcher;
  /** Retries after the first attempt, for retryable statuses and connection errors. Default 4. */
  maxRetries?: number;
  /** First backoff delay; doubles each retry, with jitter. Default 500 ms. */
  retryBaseMs?: number;
  /** Longest backoff between attempts. Default 30 s. */
  retryMaxDelayMs?: number;
  /** Longest Retry-After we wait; a longer one fails at once (waiting hours helps nobody). Default 60 s. */
  retryAfterMaxMs?: number;
  /** 'wait-max': a longer Retry-After waits retryAfterMaxMs and retries instead of failing. Default 'fail'. */
  retryAfterBeyondMax?: 'fail' | 'wait-max';
  /**
   * When retries run out on a retryable status, return that response instead of throwing
   * (for callers that read their own error bodies, e.g. S3's XML). Default true (throw).
   */
  throwOnRetryableStatus?: boolean;
  /** Time to wait for response headers. Default 30 s. */
  headersTimeoutMs?: number;
  /** Longest silence while reading a body. Default 60 s. */
  bodyTimeoutMs?: number;
  /** Default 10, as containerd. */
  maxRedirects?: number;
  userAgent?: string;
  /** Replaceable for tests that check delays without waiting for them. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface RequestOptions {
  method?: Method | WriteMethod;
  /** Header names are matched case-insensitively; Accept-Encoding and User-Agent are ours. */
  headers?: Record<string, string | undefined>;
  /**
   * Small in-memory bodies (token form posts), re-sent as they are on retry; or a factory
   * called for every attempt (streams cannot be re-sent).
   */
  body?: string | Buffer | BodyFactory;
  signal?: AbortSignal;
  /**
   * Called before every attempt (retries and same-origin redirects): returns the headers to send
   * instead of `headers`, e.g. a request signature with a fresh date. Never called once a
   * redirect crossed origins (credentials never follow one).
   */
  prepare?: (req: PreparedRequest) => Record<string, string> | Promise<Record<string, string>>;
  /**
   * Read the final response's body as text inside the retry loop (small bodies only), so a body
   * cut off by a retryable connection error is retried like a failed request. The text is in
   * `text`; `body` is then consumed.
   */
  readText?: boolean;
}

export interface TransportResponse {
  status: number;
  headers: ResponseHeaders;
  /** Never decoded (no Content-Encoding handling): the caller must consume or dump it. */
  body: ResponseBody;
  /** Final URL after redirects (not redacted: redact before showing). */
  url: string;
  /** The whole body, when asked for with `readText`. */
  text?: string;
}

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Connection-level errors worth another attempt. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

export const USER_AGENT = `registrish/${packageVersion()}`;

/** The per-build connection pool: bounded connections per origin, kept alive between requests. */
export function createAgent(opts: { connections?: number; keepAliveTimeoutMs?: number; headersTimeoutMs?: number; bodyTimeoutMs?: number } = {}): UndiciAgent {
  return new Agent({
    connections: opts.connections ?? 8,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 10_000,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
  });
}

export class Transport {
  readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxDelayMs: number;
  private readonly retryAfterMaxMs: number;
  private readonly retryAfterBeyondMax: 'fail' | 'wait-max';
  private readonly throwOnRetryableStatus: boolean;
  private readonly headersTimeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private readonly maxRedirects: number;
  private readonly userAgent: string;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(opts: TransportOptions = {}) {
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 30_000;
    this.bodyTimeoutMs = opts.bodyTimeoutMs ?? 60_000;
    this.ownDispatcher = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? createAgent({ headersTimeoutMs: this.headersTimeoutMs, bodyTimeoutMs: this.bodyTimeoutMs });
    this.maxRetries = opts.maxRetries ?? 4;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    this.retryMaxDelayMs = opts.retryMaxDelayMs ?? 30_000;
    this.retryAfterMaxMs = opts.retryAfterMaxMs ?? 60_000;
    this.retryAfterBeyondMax = opts.retryAfterBeyondMax ?? 'fail';
    this.throwOnRetryableStatus = opts.throwOnRetryableStatus ?? true;
    this.maxRedirects = opts.maxRedirects ?? 10;
    this.userAgent = opts.userAgent ?? USER_AGENT;
    this.sleep = opts.sleep ?? ((ms, signal) => sleepFor(ms, undefined, { signal }));
  }

  /** Closes the Agent if this transport created it; a shared dispatcher belongs to its creator. */
  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }

  /**
   * One logical request: redirects followed, retryable failures retried. Returns the final
   * response whatever its status, except that retryable statuses and connection errors that
   * outlast the retries throw (HttpError / RegistrishError).
   */
  async request(url: string | URL, opts: RequestOptions = {}): Promise<TransportResponse> {
    let current = new URL(String(url));
    let method: Method | WriteMethod = opts.method ?? 'GET';
    let body = opts.body;
    let prepare = opts.prepare;
    const headers = normalizeHeaders(opts.headers);
    headers['user-agent'] = this.userAgent;
    // A blob's bytes are its digest: never let a server or proxy compress them for us.
    headers['accept-encoding'] = 'identity';

    const seen = new Set<string>();
    for (let hop = 0; ; hop++) {
      seen.add(`${method} ${current.href}`);
      const res = await this.attempt(current, method, headers, body, opts.signal, prepare, opts.readText);
      const location = REDIRECT_STATUSES.has(res.status) ? firstHeader(res.headers, 'location') : undefined;
      if (location === undefined) return { ...res, url: current.href };

      await discard(res.body);
      const next = new URL(location, current);
      if (hop + 1 > this.maxRedirects) {
        throw new HttpError(`${method} ${redactUrl(url)}: more than ${this.maxRedirects} redirects`, res.status, redactUrl(current));
      }
      // 303 means "GET it there"; 301/302 after a POST are turned into GET by every client.
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        if (method !== 'HEAD') method = 'GET';
        body = undefined;
        delete headers['content-type'];
        delete headers['content-length'];
      }
      // S3/R2 reject an Authorization header they did not sign, and a token must not leak
      // to another origin anyway. Once dropped it stays dropped.
      if (next.origin !== current.origin) {
        delete headers['authorization'];
        // A signing hook would sign for the new origin: it stays unsigned.
        prepare = undefined;
        // A request body (a token request's refresh token) is never sent on to another origin.
        if (body !== undefined) {
          throw new HttpError(`${method} ${redactUrl(url)}: refusing to resend the request body to ${redactUrl(next)}`, res.status, redactUrl(next));
        }
      }
      if (seen.has(`${method} ${next.href}`)) {
        throw new HttpError(`${method} ${redactUrl(url)}: redirect loop at ${redactUrl(next)}`, res.status, redactUrl(next));
      }
      current = next;
    }
  }

  /** One URL, with retries. */
  private async attempt(
    url: URL,
    method: Method | WriteMethod,
    headers: Record<string, string>,
    body: string | Buffer | BodyFactory | undefined,
    signal: AbortSignal | undefined,
    prepare?: RequestOptions['prepare'],
    readText?: boolean,
  ): Promise<Omit<TransportResponse, 'url'>> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.maxRetries;
      let sent = headers;
      if (prepare) {
        const { 'user-agent': ua, 'accept-encoding': ae, ...own } = headers;
        const prepared = await prepare({ method, url, headers: own, hasBody: body !== undefined });
        // Ours are set after the hook, so they are never signed (a proxy may rewrite them).
        sent = { ...normalizeHeaders(prepared), 'user-agent': ua, 'accept-encoding': ae };
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          dispatcher: this.dispatcher,
          method,
          headers: sent,
          body: typeof body === 'function' ? body() : body,
          signal,
          headersTimeout: this.headersTimeoutMs,
          bodyTimeout: this.bodyTimeoutMs,
        });
      } catch (err) {
        await this.afterConnectionError(err, method, url, attempt, last, signal);
        continue;
      }

      const final = !RETRYABLE_STATUSES.has(res.statusCode) || (last && !this.throwOnRetryableStatus);
      // A redirect's body is dropped by request(), never read.
      const followed = REDIRECT_STATUSES.has(res.statusCode) && firstHeader(res.headers, 'location') !== undefined;
      if (final && (!readText || followed)) return { status: res.statusCode, headers: res.headers, body: res.body };
      if (final) {
        try {
          const text = await res.body.text();
          return { status: res.statusCode, headers: res.headers, body: res.body, text };
        } catch (err) {
          await this.afterConnectionError(err, method, url, attempt, last, signal);
          continue;
        }
      }

      let retryAfter = parseRetryAfter(firstHeader(res.headers, 'retry-after'));
      if (retryAfter !== undefined && retryAfter > this.retryAfterMaxMs && this.retryAfterBeyondMax === 'wait-max') retryAfter = this.retryAfterMaxMs;
      if (last || (retryAfter !== undefined && retryAfter > this.retryAfterMaxMs)) {
        const detail = await readErrorDetail(res);
        const tries = attempt > 0 ? ` after ${attempt + 1} attempts` : '';
        const wait = retryAfter !== undefined && retryAfter > this.retryAfterMaxMs ? `; the server asks to retry in ${Math.ceil(retryAfter / 1000)} s` : '';
        throw new HttpError(
          `${method} ${redactUrl(url)}: ${res.statusCode} ${statusText(res.statusCode)}${tries}${wait}${detail ? ` (${detail})` : ''}`,
          res.statusCode,
          redactUrl(url),
          { hint: res.statusCode === 429 ? 'The registry is rate-limiting us; log in (docker login / REGISTRISH_AUTH) for a higher limit, or build again later.' : undefined },
        );
      }
      await discard(res.body);
      await this.sleep(retryAfter ?? this.backoff(attempt), signal);
    }
  }

  /** A request or body that failed below HTTP: throws unless it is worth another attempt, then waits. */
  private async afterConnectionError(err: unknown, method: string, url: URL, attempt: number, last: boolean, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw err;
    const code = errorCode(err);
    if (last || !code || !RETRYABLE_CODES.has(code)) throw requestFailed(method, url, attempt, err);
    await this.sleep(this.backoff(attempt), signal);
  }

  /** Exponential backoff with jitter in [d/2, d], so parallel builds do not retry in lockstep. */
  private backoff(attempt: number): number {
    const d = Math.min(this.retryMaxDelayMs, this.retryBaseMs * 2 ** attempt);
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }
}

/** A request that failed below HTTP (connection, timeout), redacted; the error is kept as cause. */
function requestFailed(method: string, url: URL, attempt: number, err: unknown): RegistrishError {
  const code = errorCode(err);
  const tries = attempt > 0 ? ` after ${attempt + 1} attempts` : '';
  return new RegistrishError(`${method} ${redactUrl(url)}: request failed${tries} (${shortCause(err)})`, {
    cause: err,
    hint: code && RETRYABLE_CODES.has(code) ? 'The server or network is unreachable or too slow; try again later.' : undefined,
  });
}

/** Retry-After as milliseconds from now: delay-seconds or an HTTP date. Undefined if absent or unparsable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function normalizeHeaders(headers: Record<string, string | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (v !== undefined) out[k.toLowerCase()] = v;
  return out;
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code;
  }
  return undefined;
}

/** The error's code and message, redacted and short: never header values (we never put them in). */
function shortCause(err: unknown): string {
  const code = errorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  const text = code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  return redact(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'HTTP error';
}
