#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test (GoogleTest suites, Lua pipelines,
# CLI checks, the out-of-tree plugin example, security.corrupt_files). This is the README's test
# command and CI's. The fuzzing and sanitizer step (scripts/fuzz.sh) is run by hand until its cold
# time fits CI's budget (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMONGE_BUILD_TESTS=ON
(cd "${MONGE_BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 600)
