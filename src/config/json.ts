// JSON with a location and a reason for every mistake: V8's messages name a position only
// sometimes ("Unexpected token ']', "[1,]" is not valid JSON" has none), and JSON.parse silently
// keeps the last of two equal property names. A small scanner finds where and why.
//
// Kept by hand rather than @humanwhocodes/momoa (tried): momoa reports tokens ("Unexpected token
// RBracket found"), not the mistake ("trailing comma before \"]\""), and accepts a raw line break
// inside a string, so JSON.parse and an explanation of each mistake would still be ours.

import { quote } from '../util/format.ts';

/** A JSON text that is not valid (or repeats a property name): where, and why in words. */
export class JsonSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
    /** The offending line with a caret under the column (empty for very long lines). */
    readonly excerpt: string,
    /** False for a duplicate property: valid JSON, but almost always a mistake. */
    readonly invalid: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${invalid ? 'invalid JSON at' : 'at'} line ${line}, column ${column}: ${reason}${excerpt}`, options);
    this.name = 'JsonSyntaxError';
  }
}

/**
 * Parses `text` (a leading BOM is allowed: Windows editors write one). Throws JsonSyntaxError for
 * invalid JSON and for a property given twice in one object.
 */
export function parseJsonLocated(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let parsed: unknown;
  let parseError: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    parseError = err;
  }
  // A file that is not JSON at all is reported for that first (a duplicate earlier in it would be a
  // second thing to fix, found on the next run).
  const problem = locateJsonError(body, { duplicates: !parseError });
  if (parseError || problem) {
    const found = problem ?? fromV8Message((parseError as Error).message, body);
    const { line, column } = lineAndColumn(body, found.offset);
    const lines = body.split('\n');
    const src = (lines[line - 1] ?? '').replace(/\r$/, '');
    const excerpt = src.length <= 160 ? `\n  ${src}\n  ${src.slice(0, column - 1).replace(/[^\t]/g, ' ')}^` : '';
    throw new JsonSyntaxError(line, column, found.reason, excerpt, !!parseError, { cause: parseError });
  }
  return parsed;
}

function fromV8Message(message: string, text: string): { offset: number; reason: string } {
  const m = / in JSON at position (\d+)/.exec(message);
  const reason = message.replace(/ in JSON at position \d+.*$/, '').replace(/, ".*" is not valid JSON$/s, '');
  return { offset: m ? Number(m[1]) : text.length, reason };
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

const MAX_JSON_DEPTH = 200;

/**
 * The offset and a readable reason of the first JSON syntax error (or duplicate property, unless
 * `duplicates: false`), or undefined if there is none.
 */
export function locateJsonError(text: string, opts: { duplicates?: boolean } = {}): { offset: number; reason: string } | undefined {
  const duplicates = opts.duplicates ?? true;
  let depth = 0;
  class Stop {
    constructor(
      readonly offset: number,
      readonly reason: string,
    ) {}
  }
  let i = 0;
  const stop = (reason: string, at = i): never => {
    throw new Stop(at, reason);
  };
  const found = () => (i >= text.length ? 'the end of the file' : quote(text[i]));
  const ws = () => {
    for (;;) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) stop('comments are not allowed in JSON');
      else return;
    }
  };
  const string = () => {
    const start = i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) stop('unterminated string', start);
      if (c === '"') {
        i++;
        return;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else stop(`invalid escape ${quote(text.slice(i, i + 2))} in a string`);
      } else if (c!.charCodeAt(0) < 0x20) {
        stop(c === '\n' ? 'line break inside a string (write \\n, or close the string with ")' : 'control character inside a string');
      } else {
        i++;
      }
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    // The scanner recurses: far deeper than any images.json, stop with a message, not a stack overflow.
    if ((c === '{' || c === '[') && depth >= MAX_JSON_DEPTH) stop(`nested deeper than ${MAX_JSON_DEPTH} levels`);
    depth++;
    try {
      valueAt(c);
    } finally {
      depth--;
    }
  };
  const valueAt = (c: string | undefined): void => {
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      const keys = new Set<string>();
      for (let comma = -1; ; ) {
        ws();
        if (text[i] === '}') stop('trailing comma before "}" (JSON allows none)', comma);
        if (text[i] !== '"') {
          stop(text[i] === "'" ? 'property names need double quotes, not single' : `expected a property name in double quotes, found ${found()}`);
        }
        const keyAt = i;
        string();
        // Valid JSON, but JSON.parse would silently keep only the last value: almost always a mistake.
        if (duplicates) {
          const key = JSON.parse(text.slice(keyAt, i)) as string;
          if (keys.has(key)) stop(`duplicate property ${quote(key)} in one object (only the last one would count)`, keyAt);
          keys.add(key);
        }
        ws();
        if (text[i] !== ':') stop(`expected ":" after the property name, found ${found()}`);
        i++;
        value();
        ws();
        if (text[i] === ',') comma = i++;
        else if (text[i] === '}') return void i++;
        else stop(`expected "," or "}" after a property value, found ${found()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (let comma = -1; ; ) {
        ws();
        if (text[i] === ']') stop('trailing comma before "]" (JSON allows none)', comma);
        value();
        ws();
        if (text[i] === ',') comma = i++;
        else if (text[i] === ']') return void i++;
        else stop(`expected "," or "]" after an array element, found ${found()}`);
      }
    }
    if (c === '"') return string();
    if (c === "'") stop('strings need double quotes, not single');
    const num = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    num.lastIndex = i;
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      const m = num.exec(text);
      if (!m) stop('invalid number');
      i += m![0].length;
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    stop(`expected a value, found ${found()}`);
  };
  try {
    value();
    ws();
    if (i < text.length) stop(`unexpected ${found()} after the end of the JSON value`);
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, reason: e.reason };
    throw e;
  }
}
