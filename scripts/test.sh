#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test (GoogleTest suites, Lua pipelines,
# CLI checks, the out-of-tree plugin example, security.corrupt_files), then the fuzzing and
# sanitizer step (scripts/fuzz.sh: the parsers' unit tests under ASan+UBSan and every libFuzzer
# harness for MONGE_FUZZ_SECONDS each, default 10). This is the README's test command and CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMONGE_BUILD_TESTS=ON
(cd "${MONGE_BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 600)
scripts/fuzz.sh "${MONGE_FUZZ_SECONDS:-10}"
