// One recursive directory walk for the tests: every entry under a folder, and the two views the
// tests need of it (regular files; relative path → bytes).
import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Every entry (files, folders, links) under `root`, with its absolute and root-relative path. */
export async function entriesUnder(root: string): Promise<{ entry: Dirent; full: string; rel: string }[]> {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  return entries.map((entry) => {
    const full = path.join(entry.parentPath, entry.name);
    return { entry, full, rel: path.relative(root, full) };
  });
}

/** The absolute paths of every regular file under `root` (links and folders left out). */
export async function filesUnder(root: string): Promise<string[]> {
  return (await entriesUnder(root)).filter((e) => e.entry.isFile()).map((e) => e.full);
}

/** Every regular file under `root`, relative path → bytes (missing root: empty). */
export async function snapshotTree(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let files: string[];
  try {
    files = await filesUnder(root);
  } catch {
    return out;
  }
  for (const f of files) out.set(path.relative(root, f), await readFile(f));
  return out;
}
