import type { PlatformFilter } from '../model/platform.ts';
import type { KeyObject } from 'node:crypto';
import type { SourceRef } from '../sources/source.ts';

// What images.json means once validated: plain data for the resolve stage.

/** One image to publish: a validated images.json entry (a mirroring entry gives one per tag). */
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
  /** Mirror signatures, attestations, SBOMs and referrers with the image. */
  attachments?: true;
  /** Publish only when signed by one of these keys. */
  verify?: VerifyPolicy;
}

/** The `verify` gate of an entry: trusted keys, and the repository name signatures must carry. */
export interface VerifyPolicy {
  /** Trusted public keys, with the file each came from (for messages). */
  keys: Array<{ file: string; key: KeyObject }>;
  /** The `docker-reference` a signature must name (cosign signs the repository); undefined: not checked. */
  identity?: string;
}

/** `tags` as rules: which of the source's tags to publish, decided at build time. */
export interface TagRules {
  /** Anchored patterns; a tag is kept when it matches one (every tag when absent). */
  allow?: RegExp[];
  /** Anchored patterns; a tag matching one is dropped. */
  deny?: RegExp[];
  /** A version range in npm's syntax; tags that are not semver (a leading `v` is allowed) are dropped. */
  semver?: string;
  /** Keep the N highest by semver precedence. */
  newest?: number;
}

/** An entry whose tags are selected by rules from the source's tag list when the build runs. */
export interface TagSelection extends Omit<ImageSpec, 'tags'> {
  rules: TagRules;
}

export interface RegistrishConfig {
  /** Absolute path of the images.json file read. */
  file: string;
  /** Entries with their tags known (listed, or the source's own). */
  images: ImageSpec[];
  /** Entries with tag rules: they become ImageSpecs once the source's tags are listed. */
  selections: TagSelection[];
  insecureRegistries: string[];
}
