import type { OpenedBlob } from './store.ts';

// Where manifests and blobs come from. The plan only talks to this interface, so a new kind
// of source (a registry, an OCI layout directory, …) never touches the plan or the writers.

export interface ManifestBytes {
  bytes: Buffer;
  /** Media type as the source labelled it (Content-Type, or the descriptor's), parameters stripped. */
  mediaType?: string;
}

export interface TagTarget {
  digest: string;
  mediaType?: string;
  size?: number;
}

export interface ImageSource {
  /** Human label for messages, e.g. `docker.io/library/alpine` or `oci:example/hello`. */
  readonly label: string;
  /**
   * Where a tag points now, as cheaply as the source can tell (a registry: one HEAD request).
   * Undefined when the source cannot say without sending the body. Never trusted for content:
   * bytes are always checked against the digest they are stored under.
   */
  resolveTag(tag: string): Promise<TagTarget | undefined>;
  /** A manifest by tag or digest. */
  fetchManifest(reference: string): Promise<ManifestBytes>;
  /** A blob's bytes from `offset` on. */
  openBlob(digest: string, offset: number): Promise<OpenedBlob>;
}
