import { createRequire } from 'node:module';
import v8 from 'node:v8';
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

/**
 * undici parses HTTP with llhttp compiled to WebAssembly, on its first connection. V8 then hands
 * the parser to its optimizing compiler on a background thread: about 35 MB of peak RSS and
 * 0.3–0.7 s of CPU on a 2-core machine, and the process cannot exit until it is done — for a
 * parser that does next to nothing per body byte (docs/performance.md). Compiled here, once, by
 * the baseline compiler alone; the flag is set only around that one synchronous compile, and not
 * at all if the user gave V8 a tiering flag of their own.
 */
function compileParser(): void {
  const own = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (/liftoff|wasm-tier|turbofan/.test(own)) return;
  let connectH1: (client: object, socket: object) => void;
  try {
    connectH1 = require('undici/lib/dispatcher/client-h1.js');
    if (typeof connectH1 !== 'function') return;
  } catch {
    return;
  }
  // connectH1 compiles the parser first, then gives up on a socket that already failed.
  const done = new Error('parser compiled');
  v8.setFlagsFromString('--liftoff-only');
  try {
    connectH1({}, { errored: done });
  } catch {
    // `done`, or anything else: either way the first real connection compiles what is missing.
  } finally {
    v8.setFlagsFromString('--no-liftoff-only');
  }
}

const undici = load();
compileParser();

export const Agent = undici.Agent;
export const request = undici.request;
