#!/usr/bin/env bash
# Installs every Debian 12 package monge needs to build, test and run its demo (one list: the
# test command needs all of them, chromium included, and the demo is a subset).
# Idempotent and non-interactive; uses sudo when not run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread       # LibTorch (CPU); OpenBLAS for fast matrix products
  libdnnl-dev                             # oneDNN headers (LibTorch's CPU backend): the unet's fused bf16 inference
  libgloo-dev                             # headers c10d's Gloo process group needs (data-parallel training)
  libluajit2-5.1-dev                      # LuaJIT
  libvips-dev                             # image I/O
  libboost-dev libboost-filesystem-dev    # Boost.DLL
  libgtest-dev                            # GoogleTest
  zlib1g-dev                              # gzip-compressed IDX files
  libarchive-dev                          # batch inputs from tar/pax/GNU (.gz/.xz/.zst/.bz2) and zip archives
  xz-utils bzip2 zstd                     # tests build .tar.xz, .tar.bz2 and .tar.zst archives with tar
  nlohmann-json3-dev                      # JSON: every file monge reads or writes as JSON (map headers, manifests, logs)
  dataset-fashion-mnist                   # the demo and test data
  mate-backgrounds                        # 12 nature photographs (JPEG, up to 2560x1920): the PHOTO-IP benchmark's data
  python3-torch                           # PyTorch reference of `monge bench train-step` (and its test)
  chromium                                # headless browser: tests render report.html (tests/bench/render_check.sh)
  clang-14 libclang-rt-14-dev llvm-14     # libFuzzer, ASan/UBSan runtimes, llvm-symbolizer (scripts/fuzz.sh)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
