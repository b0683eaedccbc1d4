// The `registry` global data that templates read: everything the registry publishes, as plain
// data. The same build that writes `v2/` computes it, before any template renders.

/** The whole registry. */
export interface RegistryData {
  /**
   * `host[:port]` clients pull from, when known at build time (the `registryHost` option, or
   * Netlify's `URL`); undefined means the pages fill it in from the address they are served at.
   */
  host?: string;
  /** Where the default pages live (`/images/`), or undefined when they are switched off. */
  pagesPath?: string;
  /** When this build resolved the registry (ISO 8601). */
  generated: string;
  /** Every repository, sorted by name. */
  repositories: RepositoryData[];
}

export interface RepositoryData {
  /** Repository name on the registry (`tools/tool`). */
  name: string;
  /** URL of its page, when the default pages are on (`/images/tools/tool/`). */
  url?: string;
  /** From the newest tag's annotations or labels (`org.opencontainers.image.description`). */
  description?: string;
  /** Tags, newest first (by the image's creation date, then by name). */
  tags: TagData[];
  /** Every platform any tag offers (`linux/amd64`, …), sorted. */
  platforms: string[];
  /** Compressed size of the newest tag's largest platform, in bytes (what a pull downloads at most). */
  size: number;
  /** Bytes of every distinct blob the repository publishes (what it takes on the host). */
  publishedBytes: number;
  /** Newest creation date of its images (ISO 8601), when their configs say. */
  updated?: string;
}

export interface TagData {
  name: string;
  /**
   * URL of the page of the image it points at, when the default pages are on
   * (`/images/tools/tool/manifests/sha256-<hex>/`: tags of one image share its page).
   */
  url?: string;
  /** The digest the tag points at (an index, or a single image manifest). */
  digest: string;
  mediaType: string;
  /** True for an index (a multi-platform image). */
  index: boolean;
  /** One per platform (a single-platform image has one). */
  platforms: PlatformData[];
  /** Newest creation date among its platforms (ISO 8601). */
  created?: string;
  /** The index's (or the manifest's) own annotations. */
  annotations: Record<string, string>;
  /** The well-known OCI annotations, from the annotations, else from the image's labels. */
  info: ImageInfo;
  /** The images.json entry it came from. */
  entry: { index: number; source: string; name: string; tags: string[]; platforms?: string[] };
  /** Signatures and other attachments published with it (cosign tags; referrers of its manifests). */
  attachments: { tags: string[]; referrers: number };
}

export interface ImageInfo {
  title?: string;
  description?: string;
  source?: string;
  licenses?: string;
  version?: string;
  revision?: string;
  url?: string;
}

export interface PlatformData {
  /** `linux/arm64/v8` */
  platform: string;
  os: string;
  architecture: string;
  variant?: string;
  /** The platform manifest's digest and media type. */
  digest: string;
  mediaType: string;
  /** Config and layers, compressed: what a pull of this platform downloads. */
  size: number;
  config: { digest: string; size: number; mediaType: string };
  layers: LayerData[];
  /** From the image config. */
  created?: string;
  labels: Record<string, string>;
  /** The platform manifest's annotations. */
  annotations: Record<string, string>;
}

export interface LayerData {
  digest: string;
  size: number;
  mediaType: string;
  /** The command that made it, from the config's history, when it says. */
  createdBy?: string;
}
