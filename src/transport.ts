import fs from 'node:fs';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { HttpError, RegistrishError } from './errors.ts';
import { redact, redactUrl } from './redact.ts';

// The HTTP layer under the registry client and the token fetcher: retries with backoff,
// manual redirects (so we decide which headers cross origins), identity encoding, timeouts.
// It knows nothing about registries or auth; statuses other than retryable ones are returned.

export type Method = 'GET' | 'HEAD' | 'POST';
export type ResponseBody = Dispatcher.ResponseData['body'];
export type ResponseHeaders = Record<string, string | string[] | undefined>;

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
  method?: Method;
  /** Header names are matched case-insensitively; Accept-Encoding and User-Agent are ours. */
  headers?: Record<string, string | undefined>;
  /** Only small in-memory bodies (token form posts): they must be re-sendable on retry. */
  body?: string | Buffer;
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: ResponseHeaders;
  /** Never decoded (no Content-Encoding handling): the caller must consume or dump it. */
  body: ResponseBody;
  /** Final URL after redirects (not redacted: redact before showing). */
  url: string;
}

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Connection-level errors worth another attempt (also used by the S3 client). */
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
export function createAgent(opts: { connections?: number; keepAliveTimeoutMs?: number; headersTimeoutMs?: number; bodyTimeoutMs?: number } = {}): Agent {
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
    let method: Method = opts.method ?? 'GET';
    let body = opts.body;
    const headers = normalizeHeaders(opts.headers);
    headers['user-agent'] = this.userAgent;
    // A blob's bytes are its digest: never let a server or proxy compress them for us.
    headers['accept-encoding'] = 'identity';

    const seen = new Set<string>();
    for (let hop = 0; ; hop++) {
      seen.add(`${method} ${current.href}`);
      const res = await this.attempt(current, method, headers, body, opts.signal);
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
    method: Method,
    headers: Record<string, string>,
    body: string | Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Omit<TransportResponse, 'url'>> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.maxRetries;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          dispatcher: this.dispatcher,
          method,
          headers,
          body,
          signal,
          headersTimeout: this.headersTimeoutMs,
          bodyTimeout: this.bodyTimeoutMs,
        });
      } catch (err) {
        if (signal?.aborted) throw err;
        const code = errorCode(err);
        if (last || !code || !RETRYABLE_CODES.has(code)) {
          const tries = attempt > 0 ? ` after ${attempt + 1} attempts` : '';
          throw new RegistrishError(`${method} ${redactUrl(url)}: request failed${tries} (${shortCause(err)})`, {
            cause: err,
            hint: code && RETRYABLE_CODES.has(code) ? 'The server or network is unreachable or too slow; try again later.' : undefined,
          });
        }
        await this.sleep(this.backoff(attempt), signal);
        continue;
      }

      if (!RETRYABLE_STATUSES.has(res.statusCode)) return { status: res.statusCode, headers: res.headers, body: res.body };

      const retryAfter = parseRetryAfter(firstHeader(res.headers, 'retry-after'));
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

  /** Exponential backoff with jitter in [d/2, d], so parallel builds do not retry in lockstep. */
  private backoff(attempt: number): number {
    const d = Math.min(this.retryMaxDelayMs, this.retryBaseMs * 2 ** attempt);
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }
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

export function firstHeader(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and drops the rest of a body we do not need (keeps the connection reusable when small). */
export async function discard(body: ResponseBody): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // the connection is dropped instead: fine
  }
}

/**
 * A short, redacted reason from an error response: the registry's `errors[].code: message`,
 * an OAuth `error_description`, or the first line of a plain-text body. Consumes the body.
 */
export async function readErrorDetail(res: { headers: ResponseHeaders; body: ResponseBody }): Promise<string | undefined> {
  const type = (firstHeader(res.headers, 'content-type') ?? '').toLowerCase();
  let text: string;
  try {
    text = await readLimited(res.body, 8 * 1024);
  } catch {
    return undefined;
  }
  if (!text.trim() || type.includes('html') || /^\s*</.test(text)) return undefined;
  let detail: string | undefined;
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    if (Array.isArray(doc.errors)) {
      detail = doc.errors
        .map((e: { code?: unknown; message?: unknown }) => [e?.code, e?.message].filter((x) => typeof x === 'string' && x).join(': '))
        .filter(Boolean)
        .join('; ');
    } else if (typeof doc.error_description === 'string') detail = doc.error_description;
    else if (typeof doc.error === 'string') detail = doc.error;
    else if (typeof doc.message === 'string') detail = doc.message;
    else if (typeof doc.details === 'string') detail = doc.details;
  } catch {
    detail = text.split('\n', 1)[0];
  }
  if (!detail) return undefined;
  detail = detail.trim();
  if (detail.length > 200) detail = `${detail.slice(0, 200)}…`;
  return redact(detail);
}

/** Reads at most `limit` bytes of a body as text, then drops the rest. */
async function readLimited(body: ResponseBody, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    chunks.push(buf);
    size += buf.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
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

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
