#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test (GoogleTest suites, Lua pipelines,
# CLI checks, the out-of-tree plugin example), then the fuzzing and sanitizer step (scripts/fuzz.sh:
# each libFuzzer harness for 20 s, the parsers' unit tests under ASan+UBSan). This is the README's
# test command and CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMONGE_BUILD_TESTS=ON
(cd "${MONGE_BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 600)
scripts/fuzz.sh
