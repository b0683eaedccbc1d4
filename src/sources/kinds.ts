import { dockerArchiveKind } from './docker-archive.ts';
import { ociArchiveKind } from './oci-archive.ts';
import { ociLayoutKind } from './oci-layout.ts';
import { registryKind } from './registry/kind.ts';
import type { ImageSource, ParsedSource, SourceContext, SourceKind, SourceParseContext, SourceRef } from './source.ts';

// Every kind of source images.json can name. A `source` string belongs to the first kind whose
// prefix starts it; a string with no known prefix is an image reference on a registry.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each kind has its own SourceRef shape
export const SOURCE_KINDS: readonly SourceKind<any>[] = [ociLayoutKind, dockerArchiveKind, ociArchiveKind, registryKind];

function kindFor(text: string): SourceKind<SourceRef> {
  return SOURCE_KINDS.find((k) => k.prefix !== undefined && text.startsWith(k.prefix)) ?? registryKind;
}

function kindOf(ref: SourceRef): SourceKind<SourceRef> {
  const kind = SOURCE_KINDS.find((k) => k.name === ref.kind);
  if (!kind) throw new Error(`unknown source kind "${ref.kind}"`);
  return kind;
}

export function parseSource(text: string, ctx: SourceParseContext): ParsedSource {
  return kindFor(text).parse(text, ctx);
}

export function describeSource(ref: SourceRef): string {
  return kindOf(ref).describe(ref);
}

export function openSource(ref: SourceRef, ctx: SourceContext): ImageSource {
  return kindOf(ref).open(ref, ctx);
}
