// The OCI content model as far as we read it: descriptors, platforms, and a parsed manifest or index.
// Everything here comes from upstream JSON: treat every field as untrusted until checked.

/** OCI content descriptor (the subset we read). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

/** A manifest or index document, parsed but not yet checked. */
export interface ManifestDocument {
  schemaVersion?: unknown;
  mediaType?: string;
  artifactType?: string;
  /** An index's entries. */
  manifests?: Descriptor[];
  /** An image manifest's config and layers. */
  config?: Descriptor;
  layers?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}
