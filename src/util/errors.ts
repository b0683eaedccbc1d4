import { redact } from './redact.ts';

// Errors the user sees. Messages name the image/tag/URL/file and say what to do;
// they never carry credentials (see redact.ts).

export class RegistrishError extends Error {
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;
  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistrishError';
    this.hint = options.hint;
  }
}

/** The upstream answered 404 (manifest or blob unknown). */
export class NotFoundError extends RegistrishError {
  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.name = 'NotFoundError';
  }
}

/** A non-success HTTP status that is not worth retrying (or retries ran out). */
export class HttpError extends RegistrishError {
  readonly status: number;
  /** Request URL, credentials stripped. */
  readonly url: string;
  constructor(message: string, status: number, url: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.name = 'HttpError';
    this.status = status;
    this.url = url;
  }
}

/** Bytes did not match the digest or size they were asked by. Never retried into the output. */
export class IntegrityError extends RegistrishError {
  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.name = 'IntegrityError';
  }
}

/** Error text for people: message, hint, causes — with secrets stripped. */
export function formatError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  let depth = 0;
  while (e && depth < 4) {
    if (e instanceof Error) {
      parts.push(depth === 0 ? e.message : `caused by: ${e.message}`);
      if (e instanceof RegistrishError && e.hint) parts.push(e.hint);
      e = e.cause;
    } else {
      parts.push(String(e));
      e = undefined;
    }
    depth++;
  }
  return redact(parts.join('\n  '));
}
