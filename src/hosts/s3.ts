import { REDEPLOY } from '../check/problems.ts';
import type { Host } from './host.ts';

// S3-compatible object stores (AWS S3, R2, Scaleway, MinIO): no configuration file, each object
// carries its own headers, set by `registrish deploy` (deploy/). Known here for `check --host s3`.

export const s3: Host = {
  name: 's3',
  fixes: {
    'base-status': 'S3/R2 REST endpoints serve no index documents: also upload v2/index.html under the key `v2/` (Content-Type application/json), or use the website endpoint.',
    status: `${REDEPLOY} Grant public s3:GetObject on the bucket (403 = not public, or missing without s3:ListBucket).`,
    'manifest-type': "Set each manifest object's Content-Type at upload (`aws s3 cp --content-type <mediaType>`; existing objects: copy onto themselves with --metadata-directive REPLACE).",
    'type-params': 'Re-upload the manifests with the Content-Type metadata without parameters.',
    'digest-header-missing': 'S3/R2 cannot send custom response headers: nothing to do (pulls work without it).',
    'content-encoding': 'Remove the Content-Encoding metadata from the objects (upload without --content-encoding).',
    'error-body': 'An object store answers a missing key with its own XML error: a website endpoint has one error document for the whole bucket, which would replace the site\'s 404 page too. Clients still say the image is not found, with a less clear message.',
    'missing-200': 'A CDN error rule that turns 403/404 into 200 /index.html (CloudFront custom error response) must not apply to /v2/.',
    'missing-not-404': 'Grant s3:ListBucket to the public so S3 answers 404 instead of 403 for missing keys.',
  },
};
