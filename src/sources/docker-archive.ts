import { Readable } from 'node:stream';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_TAR, DOCKER_MANIFEST } from '../model/media-types.ts';
import { defaultRepositoryName, parseReference } from '../model/reference.ts';
import { sha256 } from '../model/digest.ts';
import type { OpenedBlob } from '../store/store.ts';
import { IntegrityError, NotFoundError, RegistrishError } from '../util/errors.ts';
import { formatBytes, quote } from '../util/format.ts';
import { LAYER_BOMB_HINT, inflateRatio, parseArchiveSource, sharedArchive, type ArchiveMember, type TarArchive } from './archive/archive.ts';
import { openArchive } from './archive/scan-index.ts';
import type { ImageSource, ManifestBytes, SourceContext, SourceKind, SourceRef, TagTarget } from './source.ts';

// What `docker save`, `podman save` (docker-archive, the default) and `skopeo copy … docker-archive:`
// write, as a source: `docker-archive:PATH[:NAME:TAG|:@INDEX]`, skopeo's syntax. The archive holds
// image configs and layer tars listed by manifest.json, but no registry manifest: we write a Docker
// schema 2 manifest over the config's exact bytes (so the image ID, the config digest, is the saved
// image's) and the layers as they are in the archive, each digest computed by reading the archive.
// Both layouts are read: `<id>/layer.tar` + `<id>.json` (docker < 25, podman, skopeo) and
// `blobs/sha256/<hex>` (docker ≥ 25, which also writes an OCI layout beside manifest.json).

const PREFIX = 'docker-archive:';
const SYNTAX = 'write docker-archive:PATH, docker-archive:PATH:NAME:TAG or docker-archive:PATH:@INDEX';

export interface DockerArchiveRef extends SourceRef {
  kind: 'docker-archive';
  /** Absolute path of the archive. */
  file: string;
  /** The image to read, by RepoTags: `host/path:tag`, normalized as `docker pull` reads a name. */
  image?: string;
  /** The image to read, by its position in manifest.json (skopeo's `@INDEX`). */
  index?: number;
}

export const dockerArchiveKind: SourceKind<DockerArchiveRef> = {
  name: 'docker-archive',
  prefix: PREFIX,
  parse(original, ctx) {
    const { file, rest, fail, ...name } = parseArchiveSource(original, PREFIX, SYNTAX, ctx.baseDir);
    const ref: DockerArchiveRef = { kind: 'docker-archive', file, original };
    let { defaultName, defaultNameFrom } = name;
    if (rest !== undefined && rest.startsWith('@')) {
      if (!/^@[0-9]{1,6}$/u.test(rest)) fail(`${quote(rest)} is not an image index (@0, @1, …)`);
      ref.index = Number(rest.slice(1));
    } else if (rest !== undefined) {
      let parsed: ReturnType<typeof parseReference> | undefined;
      try {
        parsed = parseReference(rest);
      } catch (err) {
        fail((err as Error).message);
      }
      if (parsed!.digest !== undefined) fail('an image in an archive is named by NAME:TAG, not by digest');
      ref.tag = parsed!.tag ?? 'latest';
      ref.image = `${parsed!.domain}/${parsed!.path}:${ref.tag}`;
      defaultName = defaultRepositoryName(parsed!.domain, parsed!.path);
      defaultNameFrom = `the image name ${quote(defaultName)}`;
    }
    return { ref, defaultName, defaultNameFrom };
  },
  describe: (ref) => ref.original,
  open(ref, ctx) {
    const label = `${PREFIX}${ref.file}`;
    return new DockerArchiveSource(ref, sharedArchive(ctx, label, () => DockerArchive.load(ref.file, label, ctx)));
  },
};

interface ManifestItem {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

interface DockerImage {
  digest: string;
  bytes: Buffer;
  /** Every blob the manifest names: the config from memory, the layers from the archive. */
  blobs: Map<string, { bytes: Buffer } | { member: ArchiveMember }>;
}

/** One archive: its members (hashed once) and manifest.json; images are made when asked for. */
class DockerArchive {
  private readonly images = new Map<number, DockerImage>();

  private constructor(
    readonly tar: TarArchive,
    private readonly items: ManifestItem[],
  ) {}

  static async load(file: string, label: string, ctx: SourceContext): Promise<DockerArchive> {
    const tar = await openArchive(file, label, ctx, { inflate: true, inflateRatio: inflateRatio(ctx.env) });
    if (!tar.member('manifest.json')) {
      throw new RegistrishError(`${label}: the archive has no manifest.json, so it is not what docker save writes`, {
        hint: tar.member('index.json') ? 'It holds an OCI layout (index.json): read it as "oci-archive:PATH".' : undefined,
      });
    }
    const doc = tar.parseJson(tar.regularFile('manifest.json', 'a docker archive'));
    if (!Array.isArray(doc) || doc.length === 0) tar.fail('manifest.json', 'is not a list of images ([{"Config": …, "Layers": […]}])');
    const items = (doc as unknown[]).map((item, i): ManifestItem => {
      const x = (item && typeof item === 'object' ? item : {}) as Partial<Record<keyof ManifestItem, unknown>>;
      const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
      if (typeof x.Config !== 'string' || !strings(x.Layers) || !(x.RepoTags == null || strings(x.RepoTags))) {
        tar.fail('manifest.json', `entry ${i} is not {"Config": "…", "RepoTags": […], "Layers": […]}`);
      }
      return { Config: x.Config as string, RepoTags: (x.RepoTags as string[] | null) ?? [], Layers: x.Layers as string[] };
    });
    return new DockerArchive(tar, items);
  }

  /** Which manifest.json entry the reference picks. */
  select(ref: DockerArchiveRef, label: string): number {
    const { items } = this;
    const shown = items.slice(0, 20).map((item, i) => `@${i}: ${item.RepoTags.map((t) => quote(t)).join(', ') || '(no tags)'}`);
    const listing = `${shown.join('; ')}${items.length > shown.length ? `; … (${items.length} in all)` : ''}`;
    if (ref.index !== undefined) {
      if (ref.index < items.length) return ref.index;
      throw new NotFoundError(`${label}: there is no image @${ref.index}: the archive holds ${items.length}`, { hint: `It holds ${listing}.` });
    }
    if (ref.image === undefined) {
      if (items.length === 1) return 0;
      throw new RegistrishError(`${label}: the archive holds ${items.length} images; name the one to publish (${SYNTAX})`, {
        hint: `It holds ${listing}.`,
      });
    }
    const matches = items.flatMap((item, i) => (item.RepoTags.some((t) => normalizedName(t) === ref.image) ? [i] : []));
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new NotFoundError(`${label}: no image in the archive is tagged ${quote(ref.image)}`, { hint: `It holds ${listing}.` });
    throw new RegistrishError(`${label}: ${matches.length} images in the archive are tagged ${quote(ref.image)} (${matches.map((i) => `@${i}`).join(', ')}); pick one by its index`);
  }

  /** The image at manifest.json entry `i`, with its Docker schema 2 manifest (same bytes every build). */
  image(i: number): DockerImage {
    let image = this.images.get(i);
    if (!image) {
      image = this.makeImage(i);
      this.images.set(i, image);
    }
    return image;
  }

  private makeImage(i: number): DockerImage {
    const tar: TarArchive = this.tar;
    const item = this.items[i]!;
    const where = `manifest.json (image @${i})`;
    const configMember = tar.regularFile(item.Config, where);
    const configBytes = tar.jsonBytes(configMember);
    const configDigest = configMember.digest!;
    // docker and podman name the config after the image ID, its digest.
    const id = /(?:^|\/)([a-f0-9]{64})\.json$/u.exec(configMember.name)?.[1];
    if (id !== undefined && configDigest !== `sha256:${id}`) {
      throw new IntegrityError(`${tar.label}: member ${quote(configMember.name)} hashes to ${configDigest}, not to the image ID its name gives`);
    }
    const config = tar.parseJson(configMember) as { rootfs?: { diff_ids?: unknown } } | null;
    const diffIds = config?.rootfs?.diff_ids;
    if (!Array.isArray(diffIds)) tar.fail(configMember.name, 'is not an image config (it has no rootfs.diff_ids)');
    if (diffIds.length !== item.Layers.length) {
      tar.fail(configMember.name, `lists ${diffIds.length} layers (rootfs.diff_ids), but ${where} lists ${item.Layers.length}`);
    }
    const blobs: DockerImage['blobs'] = new Map([[configDigest, { bytes: configBytes }]]);
    const layers = item.Layers.map((name, j) => {
      const member = tar.regularFile(name, where);
      let mediaType: string;
      let diffId: string;
      if (member.compression === 'gzip') {
        const inflated = member.inflated!;
        if ('error' in inflated && inflated.bomb) {
          throw new RegistrishError(`${tar.label}: member ${quote(member.name)} (${formatBytes(member.size)} of gzip) ${inflated.error}; refused as a decompression bomb`, { hint: LAYER_BOMB_HINT });
        }
        if ('error' in inflated) return tar.fail(member.name, `is not a valid gzip stream (${inflated.error})`);
        mediaType = DOCKER_LAYER;
        diffId = inflated.digest;
      } else if (member.compression === 'zstd') {
        return tar.fail(member.name, 'is a zstd-compressed layer, which a Docker schema 2 manifest cannot describe');
      } else {
        mediaType = DOCKER_LAYER_TAR;
        diffId = member.digest!;
      }
      if (diffId !== diffIds[j]) {
        const content = mediaType === DOCKER_LAYER ? 'decompressed content' : 'content';
        throw new IntegrityError(
          `${tar.label}: member ${quote(member.name)} is layer ${j + 1} of ${where}, but its ${content} hashes to ${diffId}, not to the diff_id ${quote(diffIds[j])} its config lists`,
        );
      }
      blobs.set(member.digest!, { member });
      return { mediaType, size: member.size, digest: member.digest! };
    });
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: configBytes.length, digest: configDigest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
    return { digest: sha256(bytes), bytes, blobs };
  }
}

/** A RepoTags entry as `host/path:tag` (docker writes `alpine:3.20`, skopeo `docker.io/library/alpine:3.20`). */
function normalizedName(repoTag: string): string | undefined {
  try {
    const r = parseReference(repoTag);
    return r.digest === undefined ? `${r.domain}/${r.path}:${r.tag ?? 'latest'}` : undefined;
  } catch {
    return undefined;
  }
}

class DockerArchiveSource implements ImageSource {
  readonly label: string;
  private selected?: Promise<{ archive: DockerArchive; image: DockerImage }>;

  constructor(
    private readonly ref: DockerArchiveRef,
    private readonly archive: () => Promise<DockerArchive>,
  ) {
    // Includes the image picked: the resolve stage keys its tag lookups by label.
    this.label = `${PREFIX}${ref.file}${ref.image !== undefined ? `:${ref.image}` : ref.index !== undefined ? `:@${ref.index}` : ''}`;
  }

  /** The one tag this source answers: the entry's (an archive has no tag list of its own). */
  private get tag(): string {
    return this.ref.tag ?? 'latest';
  }

  private image(): Promise<{ archive: DockerArchive; image: DockerImage }> {
    this.selected ??= this.archive().then((archive) => ({ archive, image: archive.image(archive.select(this.ref, this.label)) }));
    return this.selected;
  }

  async resolveTag(tag: string): Promise<TagTarget | undefined> {
    if (tag !== this.tag) throw new NotFoundError(`${this.label}: no tag ${quote(tag)} (a docker archive publishes the image it names, nothing else)`);
    const { image } = await this.image();
    return { digest: image.digest, mediaType: DOCKER_MANIFEST, size: image.bytes.length, exact: true };
  }

  async fetchManifest(reference: string): Promise<ManifestBytes> {
    const { image } = await this.image();
    if (reference !== image.digest && reference !== this.tag) throw new NotFoundError(`${this.label}: no manifest ${reference}`);
    return { bytes: image.bytes, mediaType: DOCKER_MANIFEST };
  }

  async openBlob(digest: string, offset: number): Promise<OpenedBlob> {
    const { archive, image } = await this.image();
    const blob = image.blobs.get(digest);
    if (!blob) throw new NotFoundError(`${this.label}: the image has no blob ${digest}`);
    const body = 'bytes' in blob ? Readable.from([blob.bytes.subarray(offset)], { objectMode: false }) : archive.tar.open(blob.member, offset);
    return { status: offset > 0 ? 206 : 200, body };
  }
}
