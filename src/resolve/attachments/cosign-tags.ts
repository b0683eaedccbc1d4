import { digestTag, type AttachmentKind } from './attachment.ts';

// cosign's tag scheme: the signature, attestations and SBOM of manifest sha256:<hex> live under the
// tags sha256-<hex>.sig, .att and .sbom of the same repository. Published under the same tags, so
// `cosign verify` and sigstore policies find them on the static registry exactly as upstream.

export const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;

export const cosignTags: AttachmentKind = {
  name: 'cosign',
  async find(subject, ctx) {
    const tags = COSIGN_SUFFIXES.map((s) => `${digestTag(subject)}.${s}`);
    const found = await Promise.all(tags.map(async (tag) => ((await ctx.manifestAtTag(tag)) ? tag : undefined)));
    return { tags: found.filter((t): t is string => t !== undefined), referrers: [] };
  },
};
