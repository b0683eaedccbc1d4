// Shared data shapes. Each stage of the pipeline hands the next one plain data:
// images.json → ImageSpec → (source) → Plan → PublishedPath[] → host writers.

/** OCI content descriptor (the subset we read). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

/** A parsed `os/arch[/variant]` from images.json. */
export interface PlatformFilter {
  os: string;
  architecture: string;
  variant?: string;
}

/** Where an image comes from. */
export type SourceRef =
  | {
      kind: 'registry';
      /** Registry as the user means it, normalized: `docker.io`, `ghcr.io`, `127.0.0.1:5000`. Used for credentials. */
      registry: string;
      /** host[:port] the HTTP API lives on (`registry-1.docker.io` for Docker Hub). */
      apiHost: string;
      /** Plain HTTP (loopback hosts, or listed in insecureRegistries). */
      insecure: boolean;
      /** Repository path on the source registry, e.g. `library/alpine`. */
      repository: string;
      tag?: string;
      digest?: string;
      /** The string exactly as written in images.json. */
      original: string;
    }
  | {
      kind: 'oci-layout';
      /** Absolute path of the OCI image layout directory. */
      dir: string;
      tag?: string;
      digest?: string;
      original: string;
    };

/** One validated images.json entry. */
export interface ImageSpec {
  /** Position in images.json `images` array, for messages (`images[3]`). */
  index: number;
  source: SourceRef;
  /** Repository name on the static registry. */
  name: string;
  /** Tags to publish (non-empty). */
  tags: string[];
  /** Platform filter; undefined = publish every platform byte-for-byte. */
  platforms?: PlatformFilter[];
}

export interface RegistrishConfig {
  /** Absolute path of the images.json file read. */
  file: string;
  images: ImageSpec[];
  insecureRegistries: string[];
}

/** What kind of thing a published path is; host writers decide headers from this. */
export type PathKind = 'base' | 'catalog' | 'tags' | 'manifest' | 'blob';

/**
 * A neutral description of one URL the static registry answers, and the file behind it.
 * Host writers (Netlify `_headers`, nginx, S3, …) turn a list of these into host configuration.
 */
export interface PublishedPath {
  /** URL path, always starting with `/`, e.g. `/v2/`, `/v2/alpine/manifests/3.20`. */
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
}
