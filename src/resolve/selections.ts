import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ImageSpec, TagSelection } from '../config/types.ts';
import type { ImageSource } from '../sources/source.ts';
import { mapLimit } from '../util/concurrency.ts';
import { RegistrishError } from '../util/errors.ts';
import { compareStrings, quote } from '../util/format.ts';
import { withContext } from './context.ts';
import { describeRules, selectTags } from './tag-rules.ts';

// Entries with tag rules become images once the source's tags are listed: one tags/list walk per
// entry, then the plan resolves each kept tag like a listed one. What each build kept is saved
// beside the cache, so the next build can say which tags arrived and which left.

export interface SelectionReport {
  /** images.json position and source, for the summary line. */
  index: number;
  source: string;
  name: string;
  listed: number;
  kept: string[];
  /** Dropped by `semver`/`newest` for not being a version. */
  notSemver: number;
  /** Since the last successful build (undefined when there is none to compare with). */
  added?: string[];
  dropped?: string[];
}

const STATE_FILE = 'state/tag-selections.json';

interface SelectionState {
  version: 1;
  /** `<name> <source>` → the tags kept then. */
  entries: Record<string, string[]>;
}

const stateKey = (s: { name: string; source: string }) => `${s.name} ${s.source}`;

async function readState(cacheDir: string): Promise<SelectionState['entries']> {
  try {
    const doc = JSON.parse(await readFile(path.join(cacheDir, STATE_FILE), 'utf8')) as SelectionState;
    return doc?.version === 1 && doc.entries && typeof doc.entries === 'object' ? doc.entries : {};
  } catch {
    // None yet, or damaged: the summary then has nothing to compare with.
    return {};
  }
}

/** Saves what this build kept (after it published): written whole, then renamed into place. */
export async function saveSelections(cacheDir: string, reports: readonly SelectionReport[]): Promise<void> {
  if (reports.length === 0) return;
  const entries = await readState(cacheDir);
  for (const r of reports) entries[stateKey(r)] = r.kept;
  const file = path.join(cacheDir, STATE_FILE);
  await mkdir(path.dirname(file), { recursive: true });
  // Written in the cache's tmp/ (same filesystem), where a build killed before the rename leaves
  // it to be cleaned like any other temp file, instead of beside the state for good.
  const tmpDir = path.join(cacheDir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  const tmp = path.join(tmpDir, `${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(tmp, `${JSON.stringify({ version: 1, entries } satisfies SelectionState)}\n`);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function expandSelections(
  selections: readonly TagSelection[],
  options: { sourceFor: (spec: ImageSpec) => ImageSource; cacheDir: string; concurrency?: number },
): Promise<{ specs: ImageSpec[]; reports: SelectionReport[] }> {
  if (selections.length === 0) return { specs: [], reports: [] };
  const previous = await readState(options.cacheDir);
  const results = await mapLimit(selections, options.concurrency ?? 4, (sel) => {
    const context = `images[${sel.index}] (${sel.source.original} → ${sel.name})`;
    return withContext(context, expandOne(sel, context, options.sourceFor, previous));
  });
  return { specs: results.flatMap((r) => r.specs), reports: results.map((r) => r.report) };
}

async function expandOne(
  sel: TagSelection,
  context: string,
  sourceFor: (spec: ImageSpec) => ImageSource,
  previous: SelectionState['entries'],
): Promise<{ specs: ImageSpec[]; report: SelectionReport }> {
  const { rules, ...rest } = sel;
  const source = sourceFor({ ...rest, tags: [] });
  if (!source.listTags) {
    throw new RegistrishError(`${context}: tag rules need a source that can list its tags, and ${source.label} cannot`, {
      hint: 'List the tags in images.json ("tags": ["1.0", "latest"]).',
    });
  }
  const listed = await source.listTags();
  const { kept, notSemver } = selectTags(listed, rules);
  if (kept.length === 0) {
    const sample = [...listed].sort(compareStrings).slice(0, 12).map(quote).join(', ');
    throw new RegistrishError(`${context}: the tag rules (${describeRules(rules)}) keep none of the ${listed.length} tags listed`, {
      hint: listed.length ? `Tags there include ${sample}${listed.length > 12 ? ', …' : ''}. Fix "tags" in images.json.` : 'The repository has no tags.',
    });
  }
  const report: SelectionReport = { index: sel.index, source: sel.source.original, name: sel.name, listed: listed.length, kept, notSemver };
  const before = previous[stateKey(report)];
  if (before) {
    report.added = kept.filter((t) => !before.includes(t));
    report.dropped = before.filter((t) => !kept.includes(t));
  }
  const specs = kept.map((tag): ImageSpec => ({ ...rest, source: { ...sel.source, tag }, tags: [tag] }));
  return { specs, report };
}

/** The summary line of one entry: `images[2] (… → nginx): 57 tags listed, 3 kept; new: 1.27.3; gone: 1.26.2`. */
export function selectionLine(r: SelectionReport): string {
  const parts = [`${r.listed} tags listed, ${r.kept.length} kept (${r.kept.slice(0, 8).join(', ')}${r.kept.length > 8 ? ', …' : ''})`];
  if (r.notSemver) parts.push(`${r.notSemver} not semver, dropped`);
  if (r.added?.length) parts.push(`new: ${r.added.join(', ')}`);
  if (r.dropped?.length) parts.push(`gone: ${r.dropped.join(', ')}`);
  if (r.added && !r.added.length && !r.dropped?.length) parts.push('no change since the last build');
  return `images[${r.index}] (${r.source} → ${r.name}): ${parts.join('; ')}`;
}
