#!/usr/bin/env bash
# Configures and builds monge into ./build (Release, Ninja, ccache). Used by test.sh and demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${MONGE_BUILD_DIR:-build}"
JOBS="${MONGE_JOBS:-$(nproc)}"
# LibTorch translation units need ~1.5 GiB each; keep parallel jobs within memory.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1600000 ))
[ "$mem_jobs" -ge 1 ] && [ "$mem_jobs" -lt "$JOBS" ] && JOBS=$mem_jobs
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
