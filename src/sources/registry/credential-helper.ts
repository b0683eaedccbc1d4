import { spawn } from 'node:child_process';
import { addSecret, redact } from '../../util/redact.ts';

// The Docker credential helper protocol, the `get` half: run `docker-credential-<name> get`, write
// the registry's server address on stdin, read `{"ServerURL","Username","Secret"}` from stdout.
// A helper with no login for that address exits non-zero printing "credentials not found in native
// keychain". Bounded: a time limit (the helper and everything it started are killed), a cap on what
// it prints. Never throws: every failure comes back as a short reason that quotes nothing secret.

/** A `Username` of this value means the `Secret` is an identity token (an OAuth2 refresh token). */
export const TOKEN_USERNAME = '<token>';
export const HELPER_PREFIX = 'docker-credential-';
/** How long a helper may take by default (a keychain or `pass` answers in well under a second). */
export const DEFAULT_HELPER_TIMEOUT_MS = 10_000;
/** What a helper may print: an answer is a few hundred bytes. */
const MAX_OUTPUT_BYTES = 64 * 1024;
/** Longest part of a failing helper's own message we quote. */
const MAX_REASON_CHARS = 120;

export type HelperAnswer =
  /** `username` is TOKEN_USERNAME when `secret` is an identity token. `secret` is registered with redact. */
  | { kind: 'found'; username: string; secret: string }
  /** The helper holds nothing for this server: no credential, and nothing wrong. */
  | { kind: 'not-found' }
  /** Short, quotable: "not found on PATH", "no answer within 10 s, stopped". */
  | { kind: 'failed'; reason: string };

export interface HelperOptions {
  /** Passed to the helper as is (helpers such as `pass` need HOME and GPG's variables); its PATH finds the program. */
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** `pass` → `docker-credential-pass`. */
export function helperProgram(name: string): string {
  return `${HELPER_PREFIX}${name}`;
}

/** Runs `docker-credential-<name> get` for `serverAddress`. */
export function getFromHelper(name: string, serverAddress: string, opts: HelperOptions): Promise<HelperAnswer> {
  // A name is a suffix, looked up on PATH; a path in it would run a program the config points at.
  if (!/^[\w.+-]+$/u.test(name)) return Promise.resolve({ kind: 'failed', reason: 'not a valid helper name' });
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  // Own process group (POSIX), so a timeout stops the helper and whatever it started, and nothing else.
  const ownGroup = process.platform !== 'win32';

  return new Promise<HelperAnswer>((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(helperProgram(name), ['get'], { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: ownGroup, windowsHide: true });
    } catch (err) {
      resolve({ kind: 'failed', reason: spawnReason(err) });
      return;
    }
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let settled = false;

    const stop = () => {
      const pid = child.pid;
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        if (ownGroup) process.kill(-pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is gone already, or this is not POSIX
      }
    };
    const finish = (answer: HelperAnswer, kill = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (kill) stop();
      resolve(answer);
    };
    const timer = setTimeout(() => finish({ kind: 'failed', reason: `no answer within ${seconds(timeoutMs)}, stopped` }, true), timeoutMs);

    child.on('error', (err) => finish({ kind: 'failed', reason: spawnReason(err) }, true));
    child.stdout!.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > MAX_OUTPUT_BYTES) return finish({ kind: 'failed', reason: `printed more than ${MAX_OUTPUT_BYTES / 1024} KiB, stopped` }, true);
      stdout.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      errBytes += chunk.length;
      if (errBytes <= MAX_OUTPUT_BYTES) stderr.push(chunk);
    });
    child.on('close', (code, signal) => {
      const out = Buffer.concat(stdout).toString('utf8');
      if (code === 0) return finish(parseHelperOutput(out));
      const err = Buffer.concat(stderr).toString('utf8');
      // Docker reads the not-found message from stdout; some helpers print it on stderr.
      if (/credentials not found/iu.test(out) || /credentials not found/iu.test(err)) return finish({ kind: 'not-found' });
      const status = code !== null ? `exit status ${code}` : `killed by ${signal ?? 'a signal'}`;
      const said = quotableLine(out) ?? quotableLine(err);
      finish({ kind: 'failed', reason: said ? `${status}: ${said}` : status });
    });
    // The helper may exit without reading its input.
    child.stdin!.on('error', () => {});
    child.stdin!.end(serverAddress);
  });
}

/**
 * A helper's answer on success. Its text is never quoted in a reason: it should hold a secret.
 * The Secret is registered with redact before anything else looks at it.
 */
export function parseHelperOutput(text: string): HelperAnswer {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { kind: 'failed', reason: 'its answer is not JSON' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { kind: 'failed', reason: 'its answer is not a JSON object' };
  const { Username: username, Secret: secret } = doc as { Username?: unknown; Secret?: unknown };
  if (typeof secret === 'string') addSecret(secret);
  if (typeof secret !== 'string' || secret === '') return { kind: 'failed', reason: 'its answer has no Secret' };
  if (username !== undefined && typeof username !== 'string') return { kind: 'failed', reason: 'its answer has a Username that is not a string' };
  return { kind: 'found', username: username ?? '', secret };
}

/**
 * The first line of a failing helper's message, when it reads like one ("pass store is
 * uninitialized"): short, printable, nothing JSON-like (a JSON answer could hold a secret), redacted.
 */
function quotableLine(text: string): string | undefined {
  const line = text.trim().split('\n', 1)[0]?.trim() ?? '';
  if (line === '' || /[{}"]|secret/iu.test(line) || !/^[\x20-\x7e]+$/u.test(line)) return undefined;
  const short = line.length > MAX_REASON_CHARS ? `${line.slice(0, MAX_REASON_CHARS)}…` : line;
  return redact(short);
}

function spawnReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'not found on PATH';
  if (code === 'EACCES') return 'not executable';
  return `could not be started (${code ?? 'error'})`;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
