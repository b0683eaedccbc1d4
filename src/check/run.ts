import type { Dispatcher } from 'undici';
import { HOSTS, hostNamed } from '../hosts/index.ts';
import { RegistrishError } from '../util/errors.ts';
import { checkBlob, checkRange, quickSample } from './blobs.ts';
import { checkManifestRef, type CheckedDescriptor } from './manifests.ts';
import { checkReferrers } from './referrers.ts';
import type { CheckRow } from './problems.ts';
import { openProbe, type CheckContext } from './probe.ts';
import { checkBase, checkMissingPaths, checkTagsList, discover, listedTags } from './registry.ts';
import { registryOrigin } from './origin.ts';
import { summarize, type CheckReport } from './report.ts';

// `registrish check <url>`: a doctor for a deployed registry. It behaves like the strictest of the
// pull clients measured in /work/shared/notes/client-facts.md (containerd's HEAD-then-GET,
// containers/image's `/v2/` ping, crane's raw Content-Type compare) and, for every problem, says
// which clients it breaks and how to fix it on the host. This module walks the registry; the
// checks of each request live in registry.ts, manifests.ts and blobs.ts.

export interface CheckOptions {
  /** Registry origin, e.g. `https://registry.example.com` (a trailing `/v2/` is allowed). */
  url: string;
  /** Names and tags to check (from images.json); discovered through `/v2/_catalog` when absent. */
  images?: Array<{
    name: string;
    /** Undefined: the tags are chosen by rules at build time; read them from the registry's tags/list. */
    tags?: string[];
    /** images.json mirrors attachments: every manifest must have a referrers answer. */
    attachments?: boolean;
  }>;
  /** HEAD every blob but GET (download and hash) only a sample. */
  quick?: boolean;
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** Injected dispatcher (tests); a private pool otherwise. */
  dispatcher?: Dispatcher;
  /** The host's name (one of HOSTS), when known: enables host-specific checks (Apache's .htaccess sentinel). */
  host?: string;
}

/** Runs every check; never throws for what the server does wrong (that is a row). */
export async function runCheck(options: CheckOptions): Promise<CheckReport> {
  const origin = registryOrigin(options.url);
  const host = options.host === undefined ? undefined : hostNamed(options.host);
  if (options.host !== undefined && !host) {
    throw new RegistrishError(`unknown host "${options.host}" (one of ${HOSTS.map((h) => h.name).join(', ')})`);
  }
  const quick = options.quick ?? false;
  const source: CheckReport['source'] = options.images ? 'images' : 'catalog';
  const probe = openProbe(origin, { concurrency: options.concurrency ?? 8, dispatcher: options.dispatcher });
  const ctx: CheckContext = { send: probe.send, host, quick, origin };
  const rows: CheckRow[] = [];
  try {
    const base = await checkBase(ctx);
    rows.push(base);
    // Unreachable host: every other check would repeat the same connection error.
    if (base.problems.some((p) => p.kind === 'request-failed')) return summarize(origin, source, quick, rows);

    let targets: Array<{ name: string; tags: string[]; attachments?: boolean }>;
    // tags/list rows made during discovery, placed at the top of their repository's table.
    let tagListRows: Map<string, CheckRow> | undefined;
    if (options.images) {
      targets = [];
      tagListRows = new Map();
      for (const i of options.images) {
        if (i.tags) {
          targets.push({ name: i.name, tags: [...new Set(i.tags)], attachments: i.attachments });
          continue;
        }
        const listed = await listedTags(ctx, i.name);
        tagListRows.set(i.name, listed.listRow);
        targets.push({ name: i.name, tags: listed.tags, attachments: i.attachments });
      }
    } else {
      const found = await discover(ctx);
      rows.push(found.row);
      targets = found.targets;
      tagListRows = found.tagListRows;
    }
    const firstRepo = targets[0]?.name;
    if (firstRepo) rows.push(...(await checkMissingPaths(ctx, firstRepo)));
    const perRepo = await Promise.all(
      targets.map(async (t) => {
        const listRow = tagListRows?.get(t.name) ?? (await checkTagsList(ctx, t.name, t.tags));
        return checkRepository(ctx, t.name, t.tags, listRow, t.attachments ?? false);
      }),
    );
    for (const r of perRepo) rows.push(...r);
    return summarize(origin, source, quick, rows);
  } finally {
    await probe.close();
  }
}

/** One repository: its tags/list row, every manifest (by tag, then by digest level by level), every blob. */
async function checkRepository(ctx: CheckContext, name: string, tags: string[], listRow: CheckRow | undefined, attachments: boolean): Promise<CheckRow[]> {
  const out: CheckRow[] = [];
  if (listRow) out.push(listRow);

  // By tag, as every client starts; each tag's digest comes from its body.
  const byTag = await Promise.all(tags.map((tag) => checkManifestRef(ctx, name, tag, undefined)));
  for (const r of byTag) out.push(...r.rows);

  // Then by digest, level by level (index → its children), each digest once, in a stable order.
  const seen = new Set<string>();
  const blobs = new Map<string, CheckedDescriptor>();
  const walk = async (start: CheckedDescriptor[]): Promise<void> => {
    let level = start;
    for (let depth = 0; level.length > 0 && depth < 4; depth++) {
      const unique = level.filter((d) => !seen.has(d.digest) && (seen.add(d.digest), true));
      const results = await Promise.all(unique.map((d) => checkManifestRef(ctx, name, d.digest, d)));
      level = [];
      for (const r of results) {
        out.push(...r.rows);
        if (!r.facts) continue;
        level.push(...r.facts.children);
        for (const b of r.facts.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
      }
    }
  };
  await walk(byTag.flatMap((r) => (r.facts ? [{ digest: r.facts.digest, size: r.facts.size, mediaType: r.facts.mediaType }] : [])));
  // The referrers answers of every image manifest, and the manifests they list (signatures, SBOMs).
  const subjects = [...seen];
  const referrers = await checkReferrers(ctx, name, subjects, attachments);
  out.push(...referrers.rows);
  await walk(referrers.listed);

  const all = [...blobs.values()];
  const sample = ctx.quick ? quickSample(all) : new Set(all.map((b) => b.digest));
  const blobRows = await Promise.all(all.map((b) => checkBlob(ctx, name, b, sample.has(b.digest))));
  for (const r of blobRows) out.push(...r);
  // One resume per repository is enough to tell whether the host serves ranges.
  const ranged = all.find((b) => sample.has(b.digest) && b.size >= 2);
  if (ranged) out.push(await checkRange(ctx, name, ranged));
  return out;
}
