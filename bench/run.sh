#!/usr/bin/env bash
# The benchmark: every section of docs/performance.md, in one run.
# Needs what the tests need (scripts/install-test-deps.sh) plus GNU time, curl, openssl and rclone.
# Usage: bench/run.sh [--runs 3] [--scale 1] [--no-write]   (options go to bench/bench.ts)
set -euo pipefail
cd "$(dirname "$0")/.."
# Measure what an install runs: dist/, compiled from the current src/.
node scripts/build-dist.mjs --clean
# npx eleventy (cold, warm, memory, start-up) against skopeo and the machine's bounds.
node --import tsx bench/bench.ts "$@"
# What the site's pages add to a warm rebuild (50 repositories / 200 tags).
node --import tsx bench/pages.ts
# 1,000 and 10,000 tags: build time, memory, host files.
node --import tsx bench/scale.ts
# A second deploy to an S3-compatible store after one tag moved: requests and bytes.
node --import tsx bench/deploy.ts
# Blobs to a store (the blobs option) against rclone sync, cold and unchanged (needs rclone).
exec node --import tsx bench/blob-upload.ts
