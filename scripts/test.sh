#!/usr/bin/env bash
# The test suite: static checks, unit and integration tests, then the core
# end-to-end scenarios on real guests (each in its own network namespace).
# Installs what it needs first. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The same image cache as scripts/quickstart.sh: one build serves both.
export BANGER_E2E_CACHE=${BANGER_E2E_CACHE:-/var/cache/banger}

deno task fmt --check
deno task lint
deno task check
# The image first (built once, cached): the stand-in Firecracker's
# integration test boots its kernel, and must run here, not be skipped.
deno task e2e --image-only
BANGER_TEST_REQUIRE_GUEST=1 deno task test
deno task e2e --core
