#!/usr/bin/env bash
# The whole suite, as CI runs it on a clean clone: the Debian packages the tests need
# (the real upstream registry and the four pull clients), npm packages, type check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
npm ci --no-audit --no-fund
npx tsc --noEmit
npx vitest run
