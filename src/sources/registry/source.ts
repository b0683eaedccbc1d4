import { isValidDigest } from '../../model/digest.ts';
import type { OpenedBlob } from '../../store/store.ts';
import { NotFoundError } from '../../util/errors.ts';
import type { ImageSource, ManifestBytes, TagTarget } from '../source.ts';
import type { RegistryClient } from './client.ts';


// A repository of an upstream registry as an ImageSource: the client does HTTP and auth; this maps
// the source interface onto it (a tag resolved with a HEAD, which Docker Hub does not count).

/** One repository of an upstream registry as an image source. */
export class RegistrySource implements ImageSource {
  readonly label: string;
  readonly remote = true;

  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    registry: string,
  ) {
    this.label = `${registry}/${repository}`;
  }

  async resolveTag(tag: string): Promise<TagTarget | undefined> {
    // HEAD: free on Docker Hub's pull limit, and enough to know whether the cache already has it.
    const head = await this.client.headManifest(this.repository, tag);
    if (!head) throw this.tagNotFound(tag);
    if (!head.digest || !isValidDigest(head.digest)) return undefined;
    return { digest: head.digest, mediaType: head.mediaType, size: head.size };
  }

  async fetchManifest(reference: string): Promise<ManifestBytes> {
    try {
      const got = await this.client.getManifest(this.repository, reference);
      return { bytes: got.bytes, mediaType: got.mediaType };
    } catch (err) {
      // Fetched by tag without a HEAD first (a first build): the same message as the HEAD's.
      if (err instanceof NotFoundError && !isValidDigest(reference)) throw this.tagNotFound(reference);
      throw err;
    }
  }

  private tagNotFound(tag: string): NotFoundError {
    return new NotFoundError(`${this.label}: tag "${tag}" not found`, { hint: 'Check the tag in images.json.' });
  }

  usedCredentials(): boolean {
    return this.client.usedCredentials;
  }

  listTags(): Promise<string[]> {
    return this.client.listTags(this.repository);
  }

  referrers(digest: string): Promise<unknown[] | undefined> {
    return this.client.getReferrers(this.repository, digest);
  }

  async openBlob(digest: string, offset: number): Promise<OpenedBlob> {
    return this.client.openBlob(this.repository, digest, { offset });
  }
}
