import type { Dispatcher } from 'undici';
import type { HttpTuning } from '../http/transport.ts';
import type { OpenedBlob } from '../store/store.ts';
import type { Logger } from '../util/log.ts';

// Where manifests and blobs come from. The resolve stage only talks to ImageSource, and images.json
// only names a SourceKind by its syntax: a new kind of source (an archive, another protocol) is one
// file implementing both, plus one line in kinds.ts. Nothing else changes.

/** Where an image comes from, as parsed from images.json: the fields every kind has; each kind adds its own. */
export interface SourceRef {
  /** The kind's name (`registry`, `oci-layout`). */
  kind: string;
  /** The tag to read, when the source names one. */
  tag?: string;
  /** The digest to read, when the source pins one. */
  digest?: string;
  /** The string exactly as written in images.json. */
  original: string;
}

export interface ManifestBytes {
  bytes: Buffer;
  /** Media type as the source labelled it (Content-Type, or the descriptor's), parameters stripped. */
  mediaType?: string;
}

export interface TagTarget {
  digest: string;
  mediaType?: string;
  size?: number;
  /**
   * The source read this digest from its own index (an OCI layout's index.json), not from an
   * untrusted header: fetching the manifest by this digest is as good as fetching it by tag.
   */
  exact?: boolean;
}

export interface ImageSource {
  /** Human label for messages, e.g. `docker.io/library/alpine` or `oci:example/hello`. */
  readonly label: string;
  /**
   * resolveTag costs a request (a registry's HEAD). With nothing cached yet it cannot save the
   * fetch that follows, so a first build fetches by tag at once.
   */
  readonly remote?: boolean;
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
  /**
   * The manifests that name `digest` as their `subject` (OCI 1.1 referrers API), unchecked. Absent
   * or undefined when the source has no such API: the referrers tag schema (`sha256-<hex>`) is read instead.
   */
  referrers?(digest: string): Promise<unknown[] | undefined>;
  /** Every tag the source holds (what `tags` rules in images.json select from). */
  listTags?(): Promise<string[]>;
  /**
   * True once reading it sent a credential (a private repository, as far as we can tell): the
   * pages then do not name it. Absent for sources that never authenticate.
   */
  usedCredentials?(): boolean;
}

/** What parsing a `source` string needs besides the string. */
export interface SourceParseContext {
  /** Folder of images.json: relative paths in sources are relative to it. */
  baseDir: string;
  /** Registries reached over plain HTTP (lower-cased host[:port]). */
  insecureRegistries: ReadonlySet<string>;
}

export interface ParsedSource<R extends SourceRef = SourceRef> {
  ref: R;
  /** The repository name on the static registry when images.json gives none. */
  defaultName: string;
  /** Where that name came from, for the message when it is not a valid name. */
  defaultNameFrom: string;
  /** The name signatures of this image carry (cosign's `docker-reference`), when the kind knows one. */
  identity?: string;
}

/** What opening a source needs during one build. */
export interface SourceContext {
  logger: Logger;
  env: NodeJS.ProcessEnv;
  /** The build's cache folder: sources may keep what they learned there (an archive's member index). */
  cacheDir?: string;
  /** The build's HTTP connection pool. */
  dispatcher: Dispatcher;
  http?: HttpTuning;
  /** One value per build and key, made on first use (clients, credentials), shared by every image. */
  shared<T>(key: string, make: () => T): T;
}

/** One kind of source: its syntax in images.json, and how to read images from it. */
export interface SourceKind<R extends SourceRef = SourceRef> {
  /** Also the `kind` of every SourceRef it parses. */
  readonly name: string;
  /** The prefix that selects this kind (`oci:`); undefined for the default kind (a registry reference). */
  readonly prefix?: string;
  /**
   * Parses the `source` string (prefix included). Throws a RegistrishError whose message quotes the
   * string and says what is wrong: it is reported at `images[i].source`.
   */
  parse(text: string, ctx: SourceParseContext): ParsedSource<R>;
  /** For log lines: `docker.io/library/alpine:3.20`, `oci:example/hello:1.0`. */
  describe(ref: R): string;
  open(ref: R, ctx: SourceContext): ImageSource;
}
