import type { Descriptor } from '../model/descriptor.ts';
import { assertSafeDigest, isValidDigest } from '../model/digest.ts';
import { defaultRepositoryName, isValidTag, parseReference } from '../model/reference.ts';
import type { OpenedBlob } from '../store/store.ts';
import { NotFoundError, RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import { inflateRatio, parseArchiveSource, sharedArchive, type ArchiveMember, type TarArchive } from './archive/archive.ts';
import { openArchive } from './archive/scan-index.ts';
import type { ImageSource, ManifestBytes, SourceContext, SourceKind, SourceRef, TagTarget } from './source.ts';

// A tarred OCI image layout (what `podman save --format oci-archive` and `skopeo copy …
// oci-archive:` write) as a source: `oci-archive:PATH[:NAME]`, skopeo's syntax, NAME being the
// `org.opencontainers.image.ref.name` annotation in its index.json (skopeo writes the tag it was
// given, podman the full image name). Manifests and blobs are published exactly as they are in the
// archive; each is checked against its descriptor here (to name the member) and by the store.

const PREFIX = 'oci-archive:';
const SYNTAX = 'write oci-archive:PATH or oci-archive:PATH:NAME';
const REF_NAME = 'org.opencontainers.image.ref.name';
/** The names containers/image accepts in an OCI reference (`oci/internal`'s refRegexp). */
const REF_NAME_RE = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/u;

export interface OciArchiveRef extends SourceRef {
  kind: 'oci-archive';
  /** Absolute path of the archive. */
  file: string;
  /** The `org.opencontainers.image.ref.name` to read; absent: the archive's only image. */
  refName?: string;
}

export const ociArchiveKind: SourceKind<OciArchiveRef> = {
  name: 'oci-archive',
  prefix: PREFIX,
  parse(original, ctx) {
    const { file, rest, fail, ...name } = parseArchiveSource(original, PREFIX, SYNTAX, ctx.baseDir);
    const ref: OciArchiveRef = { kind: 'oci-archive', file, original };
    let { defaultName, defaultNameFrom } = name;
    if (rest !== undefined) {
      if (!REF_NAME_RE.test(rest)) fail(`${quote(rest)} is not a valid image name`);
      ref.refName = rest;
      if (isValidTag(rest)) {
        ref.tag = rest; // skopeo's `oci-archive:x.tar:1.0`
      } else {
        // podman's `localhost/app:1.0`: a name for the repository and its tag, when it reads as one.
        try {
          const parsed = parseReference(rest);
          if (parsed.tag !== undefined) ref.tag = parsed.tag;
          defaultName = defaultRepositoryName(parsed.domain, parsed.path);
          defaultNameFrom = `the image name ${quote(defaultName)}`;
        } catch {
          // Not an image reference: the archive's name stays the default.
        }
      }
    }
    return { ref, defaultName, defaultNameFrom };
  },
  describe: (ref) => ref.original,
  open(ref, ctx) {
    const label = `${PREFIX}${ref.file}`;
    return new OciArchiveSource(ref, sharedArchive(ctx, label, () => OciArchive.load(ref.file, label, ctx)));
  },
};

/** One archive: its members (hashed once) and index.json. */
class OciArchive {
  private constructor(
    readonly tar: TarArchive,
    readonly manifests: Descriptor[],
  ) {}

  static async load(file: string, label: string, ctx: SourceContext): Promise<OciArchive> {
    const tar = await openArchive(file, label, ctx, { inflateRatio: inflateRatio(ctx.env) });
    if (!tar.member('index.json')) {
      throw new RegistrishError(`${label}: the archive has no index.json, so it is not an OCI image layout`, {
        hint: tar.member('manifest.json') ? 'It holds a manifest.json, as docker save writes: read it as "docker-archive:PATH".' : undefined,
      });
    }
    const index = tar.parseJson(tar.regularFile('index.json', 'an OCI archive')) as { manifests?: unknown } | null;
    const manifests = index?.manifests;
    if (!Array.isArray(manifests) || manifests.some((d) => !d || typeof d !== 'object' || Array.isArray(d))) {
      tar.fail('index.json', 'is not an OCI index (its "manifests" is not a list of descriptors)');
    }
    return new OciArchive(tar, manifests as Descriptor[]);
  }

  /** The member holding a blob, by digest; `neededBy` says who names it. */
  blob(digest: string, neededBy: string): ArchiveMember {
    assertSafeDigest(digest, this.tar.label);
    return this.tar.regularFile(`blobs/${digest.replace(':', '/')}`, neededBy);
  }

  /** Checks a descriptor against the archive: its member is there, a regular file, of the size it says. */
  checkDescriptor(d: Descriptor, neededBy: string): ArchiveMember {
    const member = this.blob(d.digest, neededBy);
    if (member.size !== d.size) {
      this.tar.fail(member.name, `is ${member.size} bytes, but ${neededBy} says ${quote(d.size)}`);
    }
    return member;
  }

  tags(): string[] {
    return this.manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => typeof t === 'string');
  }
}

class OciArchiveSource implements ImageSource {
  readonly label: string;

  constructor(
    private readonly ref: OciArchiveRef,
    private readonly archive: () => Promise<OciArchive>,
  ) {
    // Includes the image picked: the resolve stage keys its tag lookups by label.
    this.label = `${PREFIX}${ref.file}${ref.refName !== undefined ? `:${ref.refName}` : ''}`;
  }

  /**
   * The entry's own tag reads the image the reference names (or the only one); any other tag (a
   * cosign `.sig`, say) is looked up by its ref.name, as in an OCI layout folder.
   */
  async resolveTag(tag: string): Promise<TagTarget | undefined> {
    const archive = await this.archive();
    const own = tag === (this.ref.tag ?? 'latest');
    let name = tag;
    let found: Descriptor[];
    if (own && this.ref.refName !== undefined) {
      name = this.ref.refName;
      found = archive.manifests.filter((d) => d.annotations?.[REF_NAME] === name);
    } else if (own && archive.manifests.length === 1) {
      found = archive.manifests;
    } else {
      found = archive.manifests.filter((d) => d.annotations?.[REF_NAME] === tag);
    }
    if (found.length === 0) {
      const known = archive.tags();
      const count = archive.manifests.length;
      const why =
        own && this.ref.refName === undefined
          ? `the archive holds ${count} images, none named ${quote(tag)}: name the one to publish (${SYNTAX})`
          : `no image named ${quote(name)} in index.json (of ${count})`;
      throw new NotFoundError(`${archive.tar.label}: ${why}`, {
        hint: known.length ? `Names in this archive: ${known.map((t) => quote(t)).join(', ')}.` : 'No image in this archive has a name.',
      });
    }
    if (found.length > 1) throw new RegistrishError(`${archive.tar.label}: index.json names ${found.length} images ${quote(name)}; which one is meant?`);
    const d = found[0]!;
    archive.checkDescriptor(d, 'index.json');
    return { digest: d.digest, mediaType: d.mediaType, size: d.size, exact: true };
  }

  async fetchManifest(reference: string): Promise<ManifestBytes> {
    const archive = await this.archive();
    const target = reference.includes(':') ? { digest: reference } : await this.resolveTag(reference);
    const neededBy = `manifest ${target!.digest}`;
    const member = archive.blob(target!.digest, neededBy);
    const bytes = archive.tar.jsonBytes(member);
    // Everything the manifest names must be in the archive as it says: checked here to name the member.
    const doc = parseObject(bytes);
    const descriptors = [doc?.config, ...(Array.isArray(doc?.layers) ? doc.layers : []), ...(Array.isArray(doc?.manifests) ? doc.manifests : [])];
    for (const d of descriptors as Array<Partial<Descriptor> | null | undefined>) {
      if (!d || typeof d !== 'object' || !isValidDigest(d.digest) || d.urls?.length) continue; // the resolve stage refuses or skips these
      archive.checkDescriptor(d as Descriptor, neededBy);
    }
    return { bytes, mediaType: (target as TagTarget).mediaType };
  }

  async openBlob(digest: string, offset: number): Promise<OpenedBlob> {
    const archive = await this.archive();
    const member = archive.blob(digest, `blob ${digest}`);
    return { status: offset > 0 ? 206 : 200, body: archive.tar.open(member, offset) };
  }

  async listTags(): Promise<string[]> {
    return [...new Set((await this.archive()).tags().filter((t) => isValidTag(t)))];
  }
}

function parseObject(bytes: Buffer): { config?: unknown; layers?: unknown; manifests?: unknown } | undefined {
  try {
    const doc: unknown = JSON.parse(bytes.toString('utf8'));
    return doc && typeof doc === 'object' && !Array.isArray(doc) ? doc : undefined;
  } catch {
    return undefined; // the resolve stage says what is wrong with it
  }
}
