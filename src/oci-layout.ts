import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError, RegistrishError } from './errors.ts';
import { assertSafeDigest } from './reference.ts';
import type { ImageSource, ManifestBytes, TagTarget } from './source.ts';
import { digestPath, type OpenedBlob } from './store.ts';
import type { Descriptor } from './types.ts';

// An OCI image layout directory (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// as a source: lets the repo ship a tiny example image and build with no network at all.

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
    return { digest: found.digest, mediaType: found.mediaType, size: found.size };
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
