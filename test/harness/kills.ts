// Killing real processes at chosen instants, for the kill tests (test/kills.test.ts,
// test/deploy-kills.test.ts): a seeded random source that a failure can name, a command started
// in its own process group and SIGKILLed whole (npx and the node it starts), and the phase the
// process was in, read from what it had left on disk by then.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { groupAlive, killGroupOrPid, sleep } from './procs.ts';

/** The seed of this run: REGISTRISH_KILL_SEED, else a fresh one (printed by the caller). */
export function killSeed(): number {
  const env = process.env.REGISTRISH_KILL_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`REGISTRISH_KILL_SEED: a whole number from 0 to ${0xffffffff}, not ${JSON.stringify(env)}`);
    return n;
  }
  return Math.floor(Math.random() * 0xffffffff);
}

/** mulberry32: a small seeded generator; the same seed gives the same instants. */
export function seeded(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(items: readonly T[]): T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int, pick: (items) => items[int(0, items.length - 1)]! };
}

export interface KillRun {
  /** True when the process was still running and was killed; false when it ended by itself first. */
  killed: boolean;
  /** ms after the start when it was killed (or ended). */
  atMs: number;
  /** What was under way at that instant (the latest stage `watch` had seen). */
  phase: string;
  /** Exit code when it ended by itself. */
  code: number | null;
  /** The signal that ended it, when something else killed it (e.g. a server at a chosen request). */
  signal: NodeJS.Signals | null;
  /** stdout + stderr. */
  output: string;
}

export interface KillOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Called every few ms while the process runs: the name of the stage it has reached, judged from
   * the disk (undefined: none yet). Stages only move forward.
   */
  watch?: () => string | undefined;
  /** The stage a kill waits for (undefined: from the start), and how long after it the kill lands. */
  after?: string;
  delayMs: number;
  /** Name of the stage before `watch` sees any (default 'running'). */
  initial?: string;
  /** Order of the stages `watch` can name (a later one wins). */
  stages?: readonly string[];
  /** Told the process group's id as soon as it exists (for a killer elsewhere). */
  onSpawn?: (pid: number) => void;
  /** Give up waiting for `after` (and kill anyway) after this long. */
  timeoutMs?: number;
}

/**
 * Runs `cmd args` in a new process group and SIGKILLs the whole group `delayMs` after the stage
 * `after` is first seen (or after the start), unless it ends first. Resolves once every process
 * of the group is gone.
 */
export async function runAndKill(cmd: string, args: string[], opts: KillOptions): Promise<KillRun> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  let code: number | null = null;
  let signal: NodeJS.Signals | null = null;
  let ended = false;
  const exited = new Promise<void>((resolve) => {
    child.once('close', (c, s) => {
      code = c;
      signal = s;
      ended = true;
      resolve();
    });
    child.once('error', () => {
      ended = true;
      resolve();
    });
  });
  const pid = child.pid!;
  opts.onSpawn?.(pid);
  let phase = opts.initial ?? 'running';
  const stages = opts.stages ?? [phase];
  const rank = (s: string): number => stages.indexOf(s);
  const look = (): void => {
    const seen = opts.watch?.();
    if (seen !== undefined && rank(seen) > rank(phase)) phase = seen;
  };
  let killAt = opts.after === undefined ? t0 + opts.delayMs : Infinity;
  const deadline = t0 + (opts.timeoutMs ?? 60_000);
  while (!ended) {
    look();
    const now = performance.now();
    if (killAt === Infinity && opts.after !== undefined && rank(phase) >= rank(opts.after)) killAt = now + opts.delayMs;
    if (now >= killAt || now >= deadline) break;
    await Promise.race([exited, sleep(Math.max(0, Math.min(4, killAt - now)))]);
  }
  const atMs = Math.round(performance.now() - t0);
  if (ended) return { killed: false, atMs, phase: 'finished', code, signal, output };
  look();
  killGroupOrPid(pid, 'SIGKILL');
  await exited;
  // npx's own children are in the group too: wait until none is left.
  for (let i = 0; i < 200 && groupAlive(pid); i++) {
    killGroupOrPid(pid, 'SIGKILL');
    await sleep(10);
  }
  return { killed: true, atMs, phase, code: null, signal: 'SIGKILL', output };
}

/** Names in a folder ('' when it does not exist): cheap enough to call every few ms. */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** mtime of a file in ms, 0 when missing. */
export function mtimeOf(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** A table of counts by key, for the printed summary. */
export function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}
