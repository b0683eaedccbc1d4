import type { Dispatcher } from 'undici';
import type { Host } from '../hosts/host.ts';
import type { ResponseBody, ResponseHeaders } from '../http/response.ts';
import { Transport, createAgent, type Method } from '../http/transport.ts';
import { semaphore } from '../util/concurrency.ts';
import { HttpError } from '../util/errors.ts';
import type { ProblemKind } from './problems.ts';

// How `check` asks the registry: every request bounded, and a transport error turned into a
// response-less answer, so a check never throws for what the server does wrong.

/**
 * An answer, or why there is none. A 5xx that outlasts the retry is a status problem; anything
 * else (refused, timeout) a failed request.
 */
export type Got = { status: number; headers: ResponseHeaders; body: ResponseBody; url?: string } | { error: string; kind: ProblemKind };

/** One request to a path of the registry's origin (the caller consumes or discards the body). */
export type Send = (method: Method, urlPath: string, headers?: Record<string, string | undefined>) => Promise<Got>;

/** What every check function is given. */
export interface CheckContext {
  send: Send;
  /** The host, when known: enables host-specific checks (Apache's .htaccess sentinel). */
  host?: Host;
  /** HEAD every blob but GET (download and hash) only a sample. */
  quick: boolean;
  /** The registry's origin: an answer from elsewhere came through a redirect (a blob store). */
  origin?: string;
}

export interface Probe {
  send: Send;
  /** Closes the connection pool if the probe created it. */
  close(): Promise<void>;
}

export function openProbe(origin: string, opts: { concurrency: number; dispatcher?: Dispatcher }): Probe {
  // As many connections as requests in flight, so a queued request's timeout does not start early.
  const agent = opts.dispatcher ? undefined : createAgent({ connections: opts.concurrency });
  // One retry only: a doctor reports a flaky host rather than hiding it behind backoff.
  const transport = new Transport({ dispatcher: opts.dispatcher ?? agent, maxRetries: 1, retryBaseMs: 200 });
  const limit = semaphore(opts.concurrency);
  return {
    send: (method, urlPath, headers = {}) =>
      limit(async () => {
        try {
          const res = await transport.request(new URL(urlPath, origin), { method, headers });
          // The final URL: a blob may be answered by an object store the site redirects to.
          return { status: res.status, headers: res.headers, body: res.body, url: res.url };
        } catch (e) {
          return { error: e instanceof Error ? e.message : String(e), kind: e instanceof HttpError ? 'status' : 'request-failed' };
        }
      }),
    close: async () => {
      await agent?.close();
    },
  };
}
