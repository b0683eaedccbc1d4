import semver from 'semver';
import type { TagRules } from '../config/types.ts';
import { compareStrings } from '../util/format.ts';

// Which of a repository's tags the rules of images.json keep (pure). `allow`/`deny` are anchored
// patterns; `semver` is a range in npm's syntax (a leading `v` counts; pre-releases only when the
// range names one, as npm does); `newest` keeps the N highest by semver precedence. With `semver`
// or `newest`, a tag that is not a version is dropped, and counted.

export interface SelectedTags {
  /** Kept, highest version first when versions decide, else in code-unit order. */
  kept: string[];
  /** Dropped by `semver`/`newest` for not being a version. */
  notSemver: number;
}

export function selectTags(tags: readonly string[], rules: TagRules): SelectedTags {
  let candidates = [...new Set(tags)].filter(
    (t) => (!rules.allow || rules.allow.some((re) => re.test(t))) && !(rules.deny ?? []).some((re) => re.test(t)),
  );
  if (rules.semver === undefined && rules.newest === undefined) return { kept: candidates.sort(compareStrings), notSemver: 0 };
  const versions = new Map<string, semver.SemVer>();
  for (const t of candidates) {
    const v = semver.parse(t);
    if (v) versions.set(t, v);
  }
  const notSemver = candidates.length - versions.size;
  candidates = [...versions.keys()];
  if (rules.semver !== undefined) candidates = candidates.filter((t) => semver.satisfies(versions.get(t)!, rules.semver!));
  // Highest first; one version written two ways (1.2.3, v1.2.3) in a stable order.
  candidates.sort((a, b) => semver.rcompare(versions.get(a)!, versions.get(b)!) || compareStrings(a, b));
  return { kept: rules.newest === undefined ? candidates : candidates.slice(0, rules.newest), notSemver };
}

/** The rules in words, for messages: `allow 1\.2[67]\..*, deny .*-alpine.*, semver >=1.26 <2, newest 3`. */
export function describeRules(rules: TagRules): string {
  const strip = (re: RegExp) => re.source.replace(/^\^\(\?:/u, '').replace(/\)\$$/u, '');
  const parts: string[] = [];
  if (rules.allow) parts.push(`allow ${rules.allow.map(strip).join(' | ')}`);
  if (rules.deny) parts.push(`deny ${rules.deny.map(strip).join(' | ')}`);
  if (rules.semver !== undefined) parts.push(`semver ${rules.semver}`);
  if (rules.newest !== undefined) parts.push(`newest ${rules.newest}`);
  return parts.join(', ');
}
