import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Descriptor } from '../model/descriptor.ts';
import { assertSafeDigest, DIGEST_ALLOWED, digestPath, digestProblem } from '../model/digest.ts';
import { isValidTag, TAG_ALLOWED, tagProblem } from '../model/reference.ts';
import type { OpenedBlob } from '../store/store.ts';
import { NotFoundError, RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import type { ImageSource, ManifestBytes, SourceKind, SourceRef, TagTarget } from './source.ts';

// An OCI image layout directory (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// as a source, `oci:DIR[:TAG|@DIGEST]` as skopeo writes it: lets the repo ship a tiny example image
// and build with no network at all.

const PREFIX = 'oci:';

export interface OciLayoutRef extends SourceRef {
  kind: 'oci-layout';
  /** Absolute path of the layout directory. */
  dir: string;
}

export const ociLayoutKind: SourceKind<OciLayoutRef> = {
  name: 'oci-layout',
  prefix: PREFIX,
  parse(original, ctx) {
    const { dir, tag, digest } = splitOciReference(original);
    const absDir = path.resolve(ctx.baseDir, dir);
    const ref: OciLayoutRef = { kind: 'oci-layout', dir: absDir, original };
    if (tag !== undefined) ref.tag = tag;
    if (digest !== undefined) ref.digest = digest;
    const defaultName = path.basename(absDir);
    return { ref, defaultName, defaultNameFrom: `the directory name ${quote(defaultName)}` };
  },
  describe(ref) {
    let dir = ref.dir;
    try {
      dir = splitOciReference(ref.original).dir;
    } catch {
      // Not written by a user: the absolute directory still says where it is.
    }
    return `${PREFIX}${dir}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
  },
  open: (ref) => new OciLayoutSource(ref.dir),
};

/**
 * Splits `oci:<dir>[:<tag>][@<digest>]` (skopeo's syntax) without touching the file system.
 * The digest is what follows the last `@` when that looks like `algorithm:…`. The tag is what
 * follows the last `:` when that contains no `/` or `\`; so a directory whose last component
 * contains `:` is written with a trailing slash (`oci:my:dir/` or `oci:my:dir/:1.0`).
 */
export function splitOciReference(s: string): { dir: string; tag?: string; digest?: string } {
  const fail: (why: string) => never = (why) => {
    throw new RegistrishError(`${quote(s)} is not a valid OCI layout reference: ${why} (write oci:DIR, oci:DIR:TAG or oci:DIR@DIGEST)`);
  };
  if (!s.startsWith(PREFIX)) fail(`it does not start with "${PREFIX}"`);
  let rest = s.slice(PREFIX.length);
  const out: { dir: string; tag?: string; digest?: string } = { dir: '' };
  const at = rest.lastIndexOf('@');
  if (at >= 0 && /^[A-Za-z0-9+._-]+:/.test(rest.slice(at + 1))) {
    const digest = rest.slice(at + 1);
    const problem = digestProblem(digest);
    if (problem) fail(`the digest ${quote(digest)} is not valid: ${problem} (${DIGEST_ALLOWED})`);
    out.digest = digest;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !/[/\\]/.test(rest.slice(colon + 1))) {
    const tag = rest.slice(colon + 1);
    const problem = tagProblem(tag);
    if (problem) fail(`the tag ${quote(tag)} is not valid: ${problem} (${TAG_ALLOWED})`);
    out.tag = tag;
    rest = rest.slice(0, colon);
  }
  if (rest === '') fail('the directory is empty');
  if (/[\0-\x1f]/.test(rest)) fail('the directory contains a control character');
  out.dir = rest;
  return out;
}

const REF_NAME = 'org.opencontainers.image.ref.name';

export class OciLayoutSource implements ImageSource {
  readonly label: string;
  private index?: Promise<{ manifests?: Descriptor[] }>;

  constructor(private readonly dir: string) {
    this.label = `oci:${dir}`;
  }

  private readIndex(): Promise<{ manifests?: Descriptor[] }> {
    this.index ??= (async () => {
      const file = path.join(this.dir, 'index.json');
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new RegistrishError(`${this.label}: cannot read ${file} (${(err as Error).message})`, {
          hint: 'An OCI layout directory holds oci-layout, index.json and blobs/ (e.g. made by `skopeo copy … oci:DIR:TAG`).',
        });
      }
      try {
        return JSON.parse(text) as { manifests?: Descriptor[] };
      } catch (err) {
        throw new RegistrishError(`${this.label}: ${file} is not valid JSON (${(err as Error).message})`);
      }
    })();
    return this.index;
  }

  async resolveTag(tag: string): Promise<TagTarget | undefined> {
    const index = await this.readIndex();
    const found = (index.manifests ?? []).find((d) => d.annotations?.[REF_NAME] === tag);
    if (!found) {
      const known = (index.manifests ?? []).map((d) => d.annotations?.[REF_NAME]).filter(Boolean);
      throw new NotFoundError(`${this.label}: no manifest tagged "${tag}" in index.json`, {
        hint: known.length ? `Tags in this layout: ${known.join(', ')}` : 'This layout has no tagged manifests.',
      });
    }
    assertSafeDigest(found.digest, `${this.label}:${tag}`);
    return { digest: found.digest, mediaType: found.mediaType, size: found.size, exact: true };
  }

  async listTags(): Promise<string[]> {
    const index = await this.readIndex();
    const names = (index.manifests ?? []).map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => isValidTag(t));
    return [...new Set(names)];
  }

  async fetchManifest(reference: string): Promise<ManifestBytes> {
    const target = reference.includes(':') ? { digest: reference } : await this.resolveTag(reference);
    if (!target) throw new NotFoundError(`${this.label}: manifest ${reference} not found`);
    const file = this.blobPath(target.digest);
    try {
      return { bytes: await readFile(file), mediaType: (target as TagTarget).mediaType };
    } catch (err) {
      throw new NotFoundError(`${this.label}: manifest ${target.digest} is missing from blobs/`, { cause: err });
    }
  }

  async openBlob(digest: string, offset: number): Promise<OpenedBlob> {
    const file = this.blobPath(digest);
    try {
      await stat(file);
    } catch (err) {
      throw new NotFoundError(`${this.label}: blob ${digest} is missing from blobs/`, { cause: err });
    }
    return { status: offset > 0 ? 206 : 200, body: createReadStream(file, { start: offset }) };
  }

  private blobPath(digest: string): string {
    return digestPath(this.dir, digest);
  }
}
