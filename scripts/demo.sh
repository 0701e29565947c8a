#!/usr/bin/env bash
# The main job: installs dependencies, builds monge, then on real Fashion-MNIST images
#   1. shows each forward operator's degradation (demo-out/degraded.png), and
#   2. runs the quickstart: trains a UOTIP map for Gaussian deblurring (about 5 minutes on
#      2 cores), restores 1,000 test images and writes demo-out/grid.png and demo-out/report.html.
# Arguments go to the quickstart: [ITERS] [reuse] ("reuse" loads demo-out/map.pt if it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p demo-out
monge="${MONGE_BUILD_DIR:-build}/bin/monge"
"$monge" run examples/degrade_fashion_mnist.lua demo-out
"$monge" run examples/quickstart.lua demo-out "$@"
