import semver from 'semver';
import { quote } from '../util/format.ts';
import { checkKeys, describeType, type Report } from './keys.ts';
import type { TagRules } from './types.ts';

// `tags` as rules that select from the upstream's tags at build time, instead of a list:
//   { "allow": ["1\\.2[67]\\..*"], "deny": [".*-alpine.*"], "semver": ">=1.26 <2", "newest": 3 }

export const TAG_RULE_KEYS = ['allow', 'deny', 'semver', 'newest'] as const;

/** The `tags` object of images[i], checked; undefined after a reported problem. */
export function parseTagRules(value: Record<string, unknown>, at: string, report: Report): TagRules | undefined {
  checkKeys(value, TAG_RULE_KEYS, at, report, { include: 'allow', exclude: 'deny', range: 'semver', latest: 'newest', last: 'newest' });
  let ok = true;
  const rules: TagRules = {};
  for (const key of ['allow', 'deny'] as const) {
    if (value[key] === undefined) continue;
    const list = value[key];
    if (!Array.isArray(list) || list.length === 0) {
      report(`${at}.${key}`, `expected a non-empty list of regular expressions, e.g. ["1\\\\.2[67]\\\\..*"], got ${describeType(list)}`);
      ok = false;
      continue;
    }
    const patterns: RegExp[] = [];
    list.forEach((source, j) => {
      if (typeof source !== 'string' || source === '') {
        report(`${at}.${key}[${j}]`, `expected a regular expression as a string, got ${describeType(source)}`);
        ok = false;
        return;
      }
      try {
        // Anchored: a pattern matches the whole tag, so "1\\.2" does not also keep "11.2.0".
        patterns.push(new RegExp(`^(?:${source})$`, 'u'));
      } catch (err) {
        report(`${at}.${key}[${j}]`, `${quote(source)} is not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /u, '')}`);
        ok = false;
      }
    });
    rules[key] = patterns;
  }
  if (value.semver !== undefined) {
    const range = value.semver;
    if (typeof range !== 'string' || semver.validRange(range) === null) {
      report(`${at}.semver`, `${typeof range === 'string' ? quote(range) : describeType(range)} is not a version range in npm's syntax, e.g. ">=1.26 <2" or "^3.1"`);
      ok = false;
    } else rules.semver = range;
  }
  if (value.newest !== undefined) {
    const n = value.newest;
    if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 10_000) {
      report(`${at}.newest`, `expected a whole number of tags to keep (1 to 10000), got ${describeType(n)}`);
      ok = false;
    } else rules.newest = n as number;
  }
  if (ok && Object.keys(rules).length === 0) {
    report(at, `the rules select nothing: give at least one of ${TAG_RULE_KEYS.map((k) => `"${k}"`).join(', ')}, or list the tags (["1.0", "latest"])`);
    ok = false;
  }
  return ok ? rules : undefined;
}

