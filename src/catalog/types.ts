import type { ArtifactKind } from '../model/artifact-kind.ts';

// The `registry` global data that templates read: everything the registry publishes, as plain
// data. The same build that writes `v2/` computes it, before any template renders.

export type { ArtifactKind };

/** The whole registry. */
export interface RegistryData {
  /**
   * `host[:port]` clients pull from, when known at build time (the `registryHost` option, or
   * Netlify's `URL`); undefined means the pages fill it in from the address they are served at.
   */
  host?: string;
  /** Where the default pages live (`/images/`), or undefined when they are switched off. */
  pagesPath?: string;
  /**
   * The classic Helm repository, when the registry publishes charts and it is on: `url` is what
   * `helm repo add NAME https://HOST<url>` takes, `index` the path of its `index.yaml`.
   */
  helmRepository?: { url: string; index: string };
  /** When this build resolved the registry (ISO 8601). */
  generated: string;
  /** Every repository, sorted by name. */
  repositories: RepositoryData[];
}

export interface RepositoryData {
  /** Repository name on the registry (`tools/tool`). */
  name: string;
  /** What its newest tag is: `image`, `helm-chart`, `wasm`, `flux`, `apptainer`, `attachment` or `artifact`. */
  kind: ArtifactKind;
  /** URL of its page, when the default pages are on (`/images/tools/tool/`). */
  url?: string;
  /** From the newest tag's annotations or labels (`org.opencontainers.image.description`). */
  description?: string;
  /** Tags, newest first (by the image's creation date, then by name). */
  tags: TagData[];
  /** Every platform any tag offers (`linux/amd64`, …), sorted (none for artifacts that are not images). */
  platforms: string[];
  /** Compressed size of the newest tag's largest platform (or of the artifact), in bytes (what a pull downloads at most). */
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
  /** What it is (from `artifactType`, the config's and the layers' media types). */
  kind: ArtifactKind;
  /** One per platform of a container image (a single-platform image has one); empty for other kinds. */
  platforms: PlatformData[];
  /** For every kind but `image`: the artifact's type and files (of the first manifest, for an index). */
  artifact?: ArtifactData;
  /** For a Helm chart: its metadata (Chart.yaml), README and default values. */
  chart?: HelmChartData;
  /** Newest creation date among its platforms (ISO 8601). */
  created?: string;
  /** The index's (or the manifest's) own annotations. */
  annotations: Record<string, string>;
  /** The well-known OCI annotations, from the annotations, else from the image's labels. */
  info: ImageInfo;
  /**
   * The images.json entry it came from. `source` is left out when it was read with credentials or
   * from a path on the build machine (`oci:`, archives), unless the `showPrivateSources` option is on:
   * `private` then says it was hidden.
   */
  entry: { index: number; source?: string; private: boolean; name: string; tags: string[]; platforms?: string[] };
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

export interface ArtifactData {
  /** The manifest's `artifactType`, else its config's media type. */
  artifactType: string;
  /** The config's media type (`application/vnd.oci.empty.v1+json` for ORAS's empty config). */
  configMediaType: string;
  /** The manifest digest the files are of (the first platform's, for an index). */
  digest: string;
  /** Config and files, in bytes. */
  size: number;
  /** Each layer: a file of the artifact. */
  files: ArtifactFile[];
  /** The manifest's annotations. */
  annotations: Record<string, string>;
}

export interface ArtifactFile {
  /** The file name (`org.opencontainers.image.title` annotation), when the layer has one. */
  title?: string;
  digest: string;
  size: number;
  mediaType: string;
}

/** A Helm chart, from its config (Chart.yaml as JSON) and its archive. Strings come from the chart: untrusted. */
export interface HelmChartData {
  name: string;
  version: string;
  apiVersion?: string;
  appVersion?: string;
  description?: string;
  /** `application` or `library`. */
  type?: string;
  keywords: string[];
  home?: string;
  /** The icon's URL: shown as a link, never loaded by the pages. */
  icon?: string;
  sources: string[];
  maintainers: Array<{ name: string; email?: string; url?: string }>;
  dependencies: Array<{ name: string; version?: string; repository?: string; condition?: string; alias?: string }>;
  kubeVersion?: string;
  deprecated?: boolean;
  annotations: Record<string, string>;
  /** The chart archive (the `.tgz`), as published: `/v2/<name>/blobs/<digest>`. */
  archive: { digest: string; size: number };
  /** The chart's README (Markdown, as written by its authors: render it without raw HTML). */
  readme?: string;
  /** The chart's values.yaml, as text. */
  values?: string;
  /** Why README or values were not read (too large, not a readable archive). */
  skipped?: string;
}
