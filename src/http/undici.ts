import { createRequire } from 'node:module';
import type { Agent as AgentType, Dispatcher } from 'undici';

// undici's connection pool and request API, loaded by their own modules. The package's entry also
// loads fetch, WebSocket, caching, proxies and more, none of which a build uses: about two thirds of
// its load time, paid by every build (docs/performance.md). Should its layout ever change, the
// entry is loaded instead.

const require = createRequire(import.meta.url);

export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher };

interface Undici {
  Agent: typeof AgentType;
  request(url: URL, opts: RequestOptions): Promise<Dispatcher.ResponseData>;
}

function load(): Undici {
  try {
    const Agent = require('undici/lib/dispatcher/agent.js') as typeof AgentType;
    const api = require('undici/lib/api/index.js') as { request(this: Dispatcher, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> };
    if (typeof Agent !== 'function' || typeof api?.request !== 'function') throw new Error('unexpected undici layout');
    return {
      Agent,
      // What undici's own request(url, opts) does with a URL, for the dispatcher we always pass.
      request: (url, { dispatcher, ...opts }) =>
        api.request.call(dispatcher, { ...opts, origin: url.origin, path: `${url.pathname}${url.search}`, method: opts.method ?? 'GET' }),
    };
  } catch {
    const undici = require('undici') as typeof import('undici');
    return { Agent: undici.Agent, request: (url, opts) => undici.request(url, opts) };
  }
}

const undici = load();

export const Agent = undici.Agent;
export const request = undici.request;
