#!/usr/bin/env bash
# The benchmark: registrish against skopeo on the same local upstream, in one run.
# Needs what the tests need (scripts/install-test-deps.sh) plus GNU time and curl.
# Usage: bench/run.sh [--runs 3] [--scale 1] [--no-write]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "bench: GNU time missing: apt-get install -y time" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl missing: apt-get install -y curl" >&2; exit 1; }
# Measure what an install runs: dist/, compiled from the current src/.
node scripts/build-dist.mjs --clean
node --import tsx bench/bench.ts "$@"
# What the site's pages add to a warm rebuild (50 repositories / 200 tags).
exec node --import tsx bench/pages.ts
