import type { Descriptor } from '../model/descriptor.ts';
import { platformMatches, type PlatformFilter } from '../model/platform.ts';

// The "platforms" filter of images.json applied to an index's entries. Attestation manifests
// (buildx provenance and SBOM) have no platform of their own: they follow the image they describe.

/** Attestations (buildx provenance/SBOM) carry platform unknown/unknown and point at the image they describe. */
export function isAttestation(d: Descriptor): boolean {
  return (
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown')
  );
}

export function filterPlatforms(children: Descriptor[], filters: PlatformFilter[]): Descriptor[] {
  const kept = new Set(
    children
      .filter((d) => !isAttestation(d) && d.platform?.os && d.platform?.architecture && filters.some((f) => platformMatches(f, d.platform!)))
      .map((d) => d.digest),
  );
  return children.filter((d) =>
    isAttestation(d) ? kept.has(d.annotations?.['vnd.docker.reference.digest'] ?? '') : kept.has(d.digest),
  );
}
