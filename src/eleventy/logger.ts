import type { Logger } from '../util/log.ts';
import { PREFIX } from './options.ts';

// Log lines go through Eleventy's own logger (so --quiet and colours behave), with our prefix.

export interface EleventyLogger {
  logWithOptions?(o: { message: string; prefix?: string; type?: string; color?: string; force?: boolean }): void;
}

export function makeLogger(eleventyConfig: { logger?: EleventyLogger }, verbose: boolean): Logger & { summary(m: string): void } {
  const emit = (message: string, type: 'info' | 'warn', force: boolean) => {
    const l = eleventyConfig.logger;
    if (l?.logWithOptions) l.logWithOptions({ message, prefix: PREFIX, type: type === 'warn' ? 'warn' : 'log', color: type === 'warn' ? 'yellow' : undefined, force });
    else (type === 'warn' ? console.warn : console.log)(`${PREFIX} ${message}`);
  };
  return {
    info: (m) => verbose && emit(m, 'info', false),
    warn: (m) => emit(m, 'warn', true),
    summary: (m) => emit(m, 'info', true),
  };
}

