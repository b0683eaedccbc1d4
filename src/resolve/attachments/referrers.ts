import { digestTag, type AttachmentKind } from './attachment.ts';

// OCI 1.1 referrers: manifests whose `subject` is the image (SBOMs, signatures, Sigstore bundles as
// GitHub's build attestations push them). From the source's referrers API when it has one, else
// from the referrers tag schema: an index under the tag sha256-<hex> listing them.

export const ociReferrers: AttachmentKind = {
  name: 'referrers',
  async find(subject, ctx) {
    const listed = await ctx.source.referrers?.(subject);
    if (listed !== undefined) return { tags: [], referrers: listed };
    const index = await ctx.manifestAtTag(digestTag(subject));
    if (!index) return { tags: [], referrers: [] };
    let doc: unknown;
    try {
      doc = JSON.parse(index.bytes.toString('utf8'));
    } catch {
      return { tags: [], referrers: [] };
    }
    const manifests = (doc as { manifests?: unknown } | null)?.manifests;
    return { tags: [], referrers: Array.isArray(manifests) ? manifests : [] };
  },
};
