import type { AttachmentKind } from './attachment.ts';
import { cosignTags } from './cosign-tags.ts';
import { ociReferrers } from './referrers.ts';

// Every kind of attachment mirrored with an image when images.json asks for `attachments`.

export const ATTACHMENT_KINDS: readonly AttachmentKind[] = [cosignTags, ociReferrers];

export { digestTag, type AttachmentContext, type AttachmentKind, type Attachments } from './attachment.ts';
