import type { ImageSource } from '../../sources/source.ts';

// Supply-chain artifacts that travel with an image without being part of it: signatures,
// attestations, SBOMs. A kind of attachment says where to find them for one manifest (the
// subject); the resolver fetches, checks and publishes what it names. A new kind is one file in
// this folder and one line in index.ts.

export interface AttachmentContext {
  source: ImageSource;
  /**
   * The manifest a tag points at, read through the cache (a HEAD when it is cached), or undefined
   * when the source has no such tag. Memoized for the build: asking twice costs nothing.
   */
  manifestAtTag(tag: string): Promise<{ digest: string; bytes: Buffer } | undefined>;
}

export interface Attachments {
  /** Tags to publish as they are upstream (cosign's `sha256-<hex>.sig`), each with the manifest it points at. */
  tags: string[];
  /**
   * Manifests that name the subject as their `subject` (OCI 1.1 referrers), as descriptors: untrusted
   * until the resolver has fetched each one and checked its digest, size, type and subject.
   */
  referrers: unknown[];
}

export interface AttachmentKind {
  readonly name: string;
  find(subject: string, ctx: AttachmentContext): Promise<Attachments>;
}

/** `sha256:<hex>` → `sha256-<hex>`: the tag form of a digest (cosign's and the referrers tag schema). */
export function digestTag(digest: string): string {
  return digest.replace(':', '-');
}
