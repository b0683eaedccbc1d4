import { verify as verifySignature, type KeyObject } from 'node:crypto';
import type { ImageSpec, VerifyPolicy } from '../config/types.ts';
import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { parseReference } from '../model/reference.ts';
import { RegistrishError } from '../util/errors.ts';
import { quote, shortDigest } from '../util/format.ts';
import { digestTag } from './attachments/index.ts';

// The `verify` gate: an image is published only when a cosign signature made with a trusted key
// signs exactly the digest being published, for the repository it comes from. cosign's classic
// layout: the manifest under the tag sha256-<hex>.sig has one layer per signature; each layer is a
// "simple signing" payload (JSON naming the image's digest and identity) whose signature, base64,
// is the layer's `dev.cosignproject.cosign/signature` annotation. Keys are PEM public keys as
// `cosign generate-key-pair` writes them: ECDSA (SHA-256, as cosign signs), RSA (PKCS#1 v1.5,
// SHA-256) or Ed25519. Keyless signatures (Fulcio certificates, Rekor) are not checked: no
// well-kept library verifies them offline without the Sigstore trust root.

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** A simple-signing payload is a few hundred bytes; a larger one is not read into memory. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Signatures on one image we look at before giving up. */
const MAX_SIGNATURES = 64;
const PAYLOAD_TYPES = new Set(['cosign container image signature', 'atomic container signature']);

export interface VerifyInput {
  /** The digest the tag points at (what the publisher signed). */
  subject: string;
  tag: string;
  spec: ImageSpec;
  context: string;
  /** The manifest under `sha256-<hex>.sig`, if the source has one. */
  signature: { digest: string; bytes: Buffer } | undefined;
  /** A payload blob's bytes, through the cache (never more than MAX_PAYLOAD_BYTES). */
  readPayload(d: { digest: string; size: number }): Promise<Buffer>;
}

/** Resolves to the key file that verified a signature; throws naming the image, tag and digest otherwise. */
export async function verifyImage(input: VerifyInput): Promise<string> {
  const { spec, subject, tag, context } = input;
  const policy = spec.verify!;
  const what = `${context}: ${spec.name}:${tag} (${subject})`;
  const hint = `Publish only images signed with ${policy.keys.map((k) => k.file).join(' or ')}: cosign sign --key cosign.key <image>@${subject}; or remove "verify" from this entry.`;
  if (!input.signature) {
    throw new RegistrishError(`${what} is not signed: the source has no cosign signature (tag ${digestTag(subject)}.sig)`, { hint });
  }
  let doc: ManifestDocument;
  try {
    doc = JSON.parse(input.signature.bytes.toString('utf8')) as ManifestDocument;
  } catch {
    throw new RegistrishError(`${what}: its signature manifest ${shortDigest(input.signature.digest)} is not valid JSON`, { hint });
  }
  const layers = (Array.isArray(doc?.layers) ? doc.layers : []).filter((l): l is Descriptor => !!l && typeof l === 'object');
  const reasons: string[] = [];
  for (const [i, layer] of layers.slice(0, MAX_SIGNATURES).entries()) {
    const verdict = await checkOne(layer, input, policy);
    if ('key' in verdict) return verdict.key;
    reasons.push(`signature ${i + 1}: ${verdict.reason}`);
  }
  if (layers.length === 0) reasons.push('the signature manifest has no signature layers');
  throw new RegistrishError(`${what}: no valid signature by a trusted key\n    ${reasons.join('\n    ')}`, { hint });
}

function verifies(key: KeyObject, payload: Buffer, signature: Buffer): boolean {
  const algorithm = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
  try {
    return verifySignature(algorithm, payload, key, signature);
  } catch {
    // A malformed signature for this key type (not DER, a wrong length).
    return false;
  }
}

/** The key file that makes this layer a valid signature of the subject, or why it is not one. */
async function checkOne(layer: Descriptor, input: VerifyInput, policy: VerifyPolicy): Promise<{ key: string } | { reason: string }> {
  const no = (reason: string) => ({ reason });
  if (layer.mediaType !== SIMPLE_SIGNING) return no(`a ${quote(layer.mediaType)} layer, not a simple-signing payload`);
  // Base64, possibly wrapped (signatures attached with `cosign attach` may carry line breaks).
  const sig = layer.annotations?.[SIGNATURE_ANNOTATION]?.replace(/\s+/gu, '');
  if (typeof sig !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/u.test(sig)) return no(`no base64 ${SIGNATURE_ANNOTATION} annotation`);
  if (!Number.isSafeInteger(layer.size) || layer.size < 0 || layer.size > MAX_PAYLOAD_BYTES) {
    return no(`its payload is declared as ${layer.size} bytes (a signature payload is at most ${MAX_PAYLOAD_BYTES}); not read`);
  }
  let payload: Buffer;
  try {
    payload = await input.readPayload(layer);
  } catch (err) {
    return no(err instanceof Error ? err.message : String(err));
  }
  // The signature first: a payload that does not verify says nothing, whatever it claims.
  const key = policy.keys.find((k) => verifies(k.key, payload, Buffer.from(sig, 'base64')));
  if (!key) return no(`does not verify with ${policy.keys.map((k) => k.file).join(' or ')}`);
  let claims: { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown }; identity?: { 'docker-reference'?: unknown } } };
  try {
    claims = JSON.parse(payload.toString('utf8'));
  } catch {
    return no('its payload is not JSON');
  }
  const critical = claims?.critical;
  if (!critical || typeof critical !== 'object') return no('its payload has no "critical" section');
  if (typeof critical.type !== 'string' || !PAYLOAD_TYPES.has(critical.type.toLowerCase())) return no(`its payload type is ${quote(critical.type)}`);
  const signed = critical.image?.['docker-manifest-digest'];
  if (signed !== input.subject) return no(`it signs ${typeof signed === 'string' ? shortDigest(signed) : quote(signed)}, another digest`);
  if (policy.identity !== undefined) {
    const named = critical.identity?.['docker-reference'];
    if (typeof named !== 'string' || !sameRepository(named, policy.identity)) {
      return no(`it is for ${quote(named)}, not ${quote(policy.identity)} (set "verify": {"identity": …} if the image was signed under another name)`);
    }
  }
  return { key: key.file };
}

/** `index.docker.io/library/alpine` and `docker.io/alpine:3` name the same repository. */
export function sameRepository(a: string, b: string): boolean {
  try {
    const x = parseReference(a);
    const y = parseReference(b);
    return x.domain === y.domain && x.path === y.path;
  } catch {
    return false;
  }
}
