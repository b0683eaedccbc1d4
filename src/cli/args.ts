import { parseArgs, type ParseArgsConfig } from 'node:util';

// What every command shares: its input/output, and how its arguments are read. Commands import
// this, never the dispatcher (main.ts), so the dispatcher can load them lazily.

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Resolves when the user asks a long-running command to stop (SIGINT/SIGTERM by default). */
  untilStopped: () => Promise<string>;
}

/** Thrown for bad invocations: printed with the usage, exit code 2. */
export class UsageError extends Error {}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * A command's arguments: positionals allowed, `-h/--help` added, and anything parseArgs refuses
 * (unknown flag, missing value) turned into a usage error, printed with the command's usage.
 */
type CommandArgsConfig<O> = { args: string[]; allowPositionals: true; strict: true; options: O & typeof HELP_OPTION };

export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<CommandArgsConfig<O>>> {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...options, ...HELP_OPTION } });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** `--concurrency`-style options: a whole number in [min, max], or a usage error naming the flag. */
export function intOption(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/u.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`${flag} must be ${min}–${max}, got "${text}"`);
  return Number(text);
}
