import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { OCI_INDEX } from '../model/media-types.ts';
import { compareStrings } from '../util/format.ts';

// The referrers of a subject as the distribution spec answers them: an OCI image index whose
// entries carry each referrer's artifactType and annotations. The same bytes are served by the
// referrers API path and, for clients that only know the tag schema, under the tag sha256-<hex>.

/** The index entry for one referrer, from the manifest itself (never from an upstream listing). */
export function referrerDescriptor(m: { digest: string; mediaType: string; size: number; doc: ManifestDocument }): Descriptor {
  const d: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.size };
  // The spec: the manifest's artifactType, else its config's media type.
  const artifactType = typeof m.doc.artifactType === 'string' ? m.doc.artifactType : m.doc.config?.mediaType;
  if (typeof artifactType === 'string' && artifactType) d.artifactType = artifactType;
  const annotations = m.doc.annotations;
  if (annotations && typeof annotations === 'object' && !Array.isArray(annotations)) {
    const strings = Object.entries(annotations).filter(([, v]) => typeof v === 'string');
    if (strings.length) d.annotations = Object.fromEntries(strings) as Record<string, string>;
  }
  return d;
}

/** The index bytes: deterministic (sorted by digest), so an unchanged set of referrers keeps its digest. */
export function referrersIndex(referrers: readonly Descriptor[]): Buffer {
  const manifests = [...new Map(referrers.map((r) => [r.digest, r])).values()].sort((a, b) => compareStrings(a.digest, b.digest));
  return Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })}\n`);
}
