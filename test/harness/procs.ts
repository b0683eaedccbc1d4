// Process helpers for the real-component test harness: free ports, polling,
// long-running daemons (killed by PID, never by name) and one-shot commands.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A free TCP port on 127.0.0.1 (the OS picks it; tiny race until the caller binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('freePort: no port assigned'))));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Human description used in the timeout message ("registry on 127.0.0.1:5000 to answer /v2/"). */
  what?: string;
}

/**
 * Polls `fn` until it returns a truthy value (which is returned). Exceptions count as "not yet";
 * the last one is included in the timeout error.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 30_000, intervalMs = 100, what = 'condition' }: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const start = Date.now();
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() - start >= timeoutMs) {
      const detail = lastErr ? ` (last error: ${lastErr instanceof Error ? lastErr.message : String(lastErr)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Last `maxBytes` of a file, '' if it does not exist. */
export function tailFile(file: string, maxBytes = 4000): string {
  try {
    const st = fs.statSync(file);
    const fd = fs.openSync(file, 'r');
    try {
      const len = Math.min(st.size, maxBytes);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, st.size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** A fresh temp directory under os.tmpdir() (default prefix keeps unix socket paths short). */
export function makeTempDir(prefix = 'rsh-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  installExitHook();
  return dir;
}

/**
 * Lazily unmounts every mount point at or below `dir` (deepest first). dockerd bind-mounts its
 * --data-root onto itself and only undoes that on a clean shutdown.
 */
export function unmountUnder(dir: string): void {
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return;
  }
  const root = path.resolve(dir);
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === root || p.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    try {
      execFileSync('umount', ['-l', p], { stdio: 'ignore' });
    } catch {
      /* not ours to fight over */
    }
  }
}

/** rm -rf that never throws (unmounts leftovers under it first; daemon dirs may be busy). */
export function removeDir(dir: string): void {
  tempDirs.delete(dir);
  unmountUnder(dir);
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    /* best effort */
  }
}

export interface Daemon {
  pid: number;
  logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnDaemonOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
  ready: () => Promise<boolean>;
  timeoutMs?: number;
  /** Name used in messages; default: basename of cmd. */
  name?: string;
}

interface Tracked {
  child: ChildProcess;
  exited: boolean;
}

const started = new Set<Tracked>();
/** Temp dirs from makeTempDir() not yet removed: removed on process exit. */
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Safety net: whatever a test forgot to stop dies with the test process.
  const killAll = (): void => {
    for (const t of started) {
      if (t.exited || !t.child.pid) continue;
      killGroupOrPid(t.child.pid, 'SIGKILL');
    }
    for (const d of tempDirs) {
      try {
        unmountUnder(d);
        fs.rmSync(d, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    tempDirs.clear();
  };
  process.on('exit', killAll);
  // A signal death skips 'exit' handlers: kill ours, then let the signal do what it would have done.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Signal the process group we created for the daemon (detached), falling back to the PID alone. */
export function killGroupOrPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a long-running process with stdout+stderr appended to `logFile`, and waits until
 * `ready()` resolves true. The process gets its own process group (so helpers it forks are
 * stopped with it); it is recorded and SIGKILLed on process exit if never stopped.
 * Throws (with the tail of the log) when it exits early or is not ready within `timeoutMs`.
 */
export async function spawnDaemon(cmd: string, args: string[], opts: SpawnDaemonOptions): Promise<Daemon> {
  installExitHook();
  const name = opts.name ?? path.basename(cmd);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const fd = fs.openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    fs.closeSync(fd);
  }
  const tracked: Tracked = { child, exited: false };
  let spawnError: Error | undefined;
  let exitInfo = '';
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      tracked.exited = true;
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      started.delete(tracked);
      resolve();
    });
    child.once('error', (e) => {
      spawnError = e;
      tracked.exited = true;
      started.delete(tracked);
      resolve();
    });
  });
  child.unref();
  started.add(tracked);

  const stop = async (graceMs = 5_000): Promise<void> => {
    const pid = child.pid;
    if (!pid) return;
    if (!tracked.exited) {
      killGroupOrPid(pid, 'SIGTERM');
      const timer = sleep(graceMs).then(() => 'timeout' as const);
      if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
        killGroupOrPid(pid, 'SIGKILL');
        await exited;
      }
    }
    // Helpers the daemon forked (same process group) that outlived it.
    if (groupAlive(pid)) {
      killGroupOrPid(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (groupAlive(pid) && Date.now() < deadline) await sleep(50);
      if (groupAlive(pid)) killGroupOrPid(pid, 'SIGKILL');
    }
  };

  const start = Date.now();
  for (;;) {
    if (spawnError) throw new Error(`${name}: failed to start ${cmd}: ${spawnError.message}`);
    if (tracked.exited) {
      await stop(500);
      throw new Error(`${name} exited during startup (${exitInfo}); log ${opts.logFile}:\n${tailFile(opts.logFile)}`);
    }
    let ok = false;
    try {
      ok = await opts.ready();
    } catch {
      ok = false;
    }
    if (ok && !tracked.exited) break;
    if (Date.now() - start > timeoutMs) {
      await stop(1_000);
      throw new Error(
        `${name} not ready after ${timeoutMs} ms; log ${opts.logFile}:\n${tailFile(opts.logFile)}`,
      );
    }
    await sleep(100);
  }
  return { pid: child.pid!, logFile: opts.logFile, stop };
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  /** Kill the command (SIGKILL) after this long; default 5 minutes. */
  timeoutMs?: number;
  /** Resolve with the non-zero code instead of throwing. */
  allowFailure?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
  ms: number;
}

/** Runs a command to completion; throws (with stderr) on a non-zero exit unless allowFailure. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 300_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: failed to start: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const res: RunResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? (signal ? 128 : 1),
        ms: Date.now() - t0,
      };
      if (timedOut) {
        reject(new Error(`${cmd} ${args.join(' ')}: timed out after ${opts.timeoutMs ?? 300_000} ms\n${res.stderr}`));
      } else if (res.code !== 0 && !opts.allowFailure) {
        const e = new Error(
          `${cmd} ${args.join(' ')} exited with ${signal ?? res.code}\nstderr: ${res.stderr.trim()}\nstdout: ${res.stdout.trim().slice(-2000)}`,
        ) as Error & { result?: RunResult };
        e.result = res;
        reject(e);
      } else {
        resolve(res);
      }
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

/** True when `cmd` is on PATH (or an existing absolute path). */
export function hasCommand(cmd: string): boolean {
  if (cmd.includes('/')) return fs.existsSync(cmd);
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && fs.existsSync(path.join(dir, cmd))) return true;
  }
  return false;
}
