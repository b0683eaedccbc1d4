// The neutral description of the registry's URLs: what the publish stage writes, what every host
// writer renders into its own configuration, and what `deploy` and `check` read back.

/** What kind of thing a published path is; host writers decide headers from this. */
export type PathKind = 'base' | 'catalog' | 'tags' | 'manifest' | 'blob' | 'referrers' | 'helm-index';

/** One URL the static registry answers, and the file behind it. */
export interface PublishedPath {
  /** URL path, always starting with `/`, e.g. `/v2/`, `/v2/alpine/manifests/3.20` (all under `/v2/` but the Helm repository's `index.yaml`). */
  urlPath: string;
  /** File path relative to the output directory, `/`-separated, e.g. `v2/index.html`. */
  file: string;
  kind: PathKind;
  /** Exact Content-Type to send (no parameters). */
  contentType: string;
  /** Docker-Content-Digest to send, if the content is addressed (manifests, blobs). */
  digest?: string;
  size: number;
  /** True when the URL names content by digest (cache forever); false for tags, lists, catalog. */
  immutable: boolean;
  /**
   * Blobs kept in an object store (the `blobs` option): the URL the site answers this path with a
   * temporary redirect to. No file is written for such a path.
   */
  location?: string;
}
