#!/usr/bin/env bash
# The main job: installs dependencies, builds monge and runs the demo pipeline on real
# Fashion-MNIST images. Writes demo-out/degraded.png. Extra arguments go to the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p demo-out
"${MONGE_BUILD_DIR:-build}"/bin/monge run examples/degrade_fashion_mnist.lua demo-out "$@"
