import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { redact } from '../util/redact.ts';

// Reading response bodies we do not trust: never more than a bound into memory, and a body we stop
// reading is always released (an undici body left unread holds its connection).

export type ResponseBody = Dispatcher.ResponseData['body'];
export type ResponseHeaders = Record<string, string | string[] | undefined>;

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
    text = await readPrefix(res.body, 8 * 1024);
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

/**
 * Drops a body we will not read. Destroying an unread undici body emits an AbortError: without a
 * listener that becomes an uncaught exception that can kill the build process.
 */
export function dropBody(body: Readable): void {
  body.on('error', () => {}).destroy();
}

/** Buffers a small body, stopping (and dropping the connection) as soon as it passes `max`. */
export async function readCapped(body: Readable, max: number, onTooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > max) {
      body.destroy();
      throw onTooLarge();
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

/** The first `limit` bytes as text (enough for a message or to tell an HTML page); the rest is dropped. */
export async function readPrefix(body: Readable, limit: number): Promise<string> {
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

/** Like readPrefix, but a body that breaks mid-way gives what arrived (the caller only wants a hint). */
export async function readPrefixLenient(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= limit) {
        body.destroy();
        break;
      }
    }
  } catch {
    // a broken body: what we have is enough for a message
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
