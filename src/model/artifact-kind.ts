import type { Descriptor, ManifestDocument } from './descriptor.ts';
import { DOCKER_CONFIG, OCI_CONFIG } from './media-types.ts';

// What a manifest is, told from its media types: an OCI manifest is the envelope of container
// images and of every other artifact (Helm charts, WebAssembly, Flux bundles, SIF images,
// signatures, SBOMs). The registry serves them all alike; the site shows each as its users know it.

export type ArtifactKind = 'image' | 'helm-chart' | 'wasm' | 'flux' | 'apptainer' | 'attachment' | 'artifact';

export const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
export const HELM_CHART_LAYER = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
/** Helm's provenance file (a signed chart), pushed beside the chart archive. */
export const HELM_PROVENANCE_LAYER = 'application/vnd.cncf.helm.chart.provenance.v1.prov';
/** OCI 1.1's empty config (`{}`), what ORAS pushes for an artifact with no config of its own. */
export const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
/** The annotation ORAS (and the image spec) give each file of an artifact: its file name. */
export const TITLE_ANNOTATION = 'org.opencontainers.image.title';

/** Media types of signatures, attestations and SBOMs (what travels with an image as an attachment). */
const ATTACHMENT_TYPES = [
  /^application\/vnd\.dev\.cosign\./u, // cosign signatures (simple signing) and attestations
  /^application\/vnd\.dev\.sigstore\./u, // Sigstore bundles (GitHub's build attestations)
  /^application\/vnd\.dsse\.envelope/u,
  /^application\/vnd\.in-toto/u,
  /^application\/vnd\.cncf\.notary\./u, // Notation signatures
  /^application\/spdx/u,
  /^text\/spdx/u,
  /^application\/vnd\.cyclonedx/u,
  /^application\/vnd\.syft\+json/u,
];

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

/**
 * The kind of one image manifest (not an index: see kindOfIndex). `artifactType`, then the config's
 * media type decide; the layers' types decide when those are generic (an empty config, an image
 * config with signature layers as cosign writes them).
 */
export function classifyManifest(doc: ManifestDocument): ArtifactKind {
  const artifactType = str(doc.artifactType);
  const config = str(doc.config?.mediaType);
  const layers = (Array.isArray(doc.layers) ? doc.layers : []).map((l: Descriptor | null) => str(l?.mediaType)).filter((t): t is string => !!t);
  const all = [artifactType, config, ...layers].filter((t): t is string => !!t);
  if (all.some((t) => t === HELM_CONFIG || t.startsWith('application/vnd.cncf.helm.chart.'))) return 'helm-chart';
  if (all.some((t) => t.startsWith('application/vnd.cncf.flux.'))) return 'flux';
  if (all.some((t) => t.startsWith('application/vnd.sylabs.sif.'))) return 'apptainer';
  // `application/wasm` (the CNCF Wasm OCI artifact layout), `application/vnd.wasm.*` and the
  // older `application/vnd.module.wasm.*` (wasm-to-oci, Istio's Wasm plugins).
  if (all.some((t) => t === 'application/wasm' || /^application\/vnd\.(?:module\.)?wasm\./u.test(t))) return 'wasm';
  if (all.some((t) => ATTACHMENT_TYPES.some((re) => re.test(t)))) return 'attachment';
  // A referrer of something else is an attachment to it, whatever it carries.
  if (doc.subject && typeof doc.subject === 'object') return 'attachment';
  if (!artifactType && (config === OCI_CONFIG || config === DOCKER_CONFIG)) return 'image';
  return 'artifact';
}

/** An index is what its platform manifests are (an index of WebAssembly modules is WebAssembly). */
export function kindOfIndex(children: ArtifactKind[]): ArtifactKind {
  const own = children.filter((k) => k !== 'attachment');
  if (own.length === 0) return children.length ? 'attachment' : 'image';
  return own.every((k) => k === own[0]) ? own[0]! : own.includes('image') ? 'image' : 'artifact';
}

/** Words for each kind, for pages and logs. */
export const KIND_LABELS: Record<ArtifactKind, string> = {
  image: 'Container image',
  'helm-chart': 'Helm chart',
  wasm: 'WebAssembly',
  flux: 'Flux artifact',
  apptainer: 'Apptainer image (SIF)',
  attachment: 'Signature, attestation or SBOM',
  artifact: 'OCI artifact',
};
