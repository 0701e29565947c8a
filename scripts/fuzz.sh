#!/usr/bin/env bash
# Fuzzing and sanitizers (issue 19; docs/security.md, tests/fuzz/README.md): builds the libFuzzer
# harnesses of tests/fuzz/ and the unit tests of the same parsers with clang's AddressSanitizer and
# UndefinedBehaviorSanitizer in their own build (./build-fuzz), runs the sanitized unit tests, then
# each harness for a bounded time over its seed corpus. A crash, a sanitizer report, an exception
# other than monge::Error, an input running over 20 s or over 2 GB fails the script; the input
# that caused it is kept in build-fuzz/artifacts/ (add it to tests/fuzz/corpus/<harness>/ with
# the fix).
#
#   scripts/fuzz.sh [SECONDS]       SECONDS per harness (default 20, or $MONGE_FUZZ_SECONDS)
#
# Needs a normal build first (scripts/build.sh): the map harness and the map tests load the unet
# and gaussian_blur plugins from ${MONGE_BUILD_DIR:-build}. scripts/test.sh runs this after ctest
# (10 s per harness).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-${MONGE_FUZZ_SECONDS:-20}}"
MAIN_BUILD="$(realpath -m "${MONGE_BUILD_DIR:-build}")"
FUZZ_BUILD="${MONGE_FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${MONGE_JOBS:-$(nproc)}"
CC_FUZZ="${MONGE_FUZZ_CC:-clang-14}" CXX_FUZZ="${MONGE_FUZZ_CXX:-clang++-14}"

for p in unet gaussian_blur; do
  [ -e "$MAIN_BUILD/lib/monge/plugins/$p.monge.so" ] ||
    { echo "fuzz: $MAIN_BUILD has no $p plugin; run scripts/build.sh first" >&2; exit 1; }
done
command -v "$CXX_FUZZ" >/dev/null || { echo "fuzz: $CXX_FUZZ not found (scripts/install-deps.sh installs clang-14)" >&2; exit 1; }

start=$(date +%s)
# CMAKE_BUILD_TYPE None: the harnesses' own -O1 -g1, and assertions kept (nlohmann-json's too).
cmake -S . -B "$FUZZ_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=None -DMONGE_BUILD_FUZZ=ON \
  -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" \
  -DMONGE_FUZZ_PLUGIN_DIR="$MAIN_BUILD/lib/monge/plugins" >/dev/null
cmake --build "$FUZZ_BUILD" -j "$JOBS"
echo "fuzz: built in $(( $(date +%s) - start )) s"

# LeakSanitizer is off: LibTorch, libvips (GLib) and OpenMP keep process-lifetime allocations
# that LSan would report at exit, and none of them is instrumented; the harnesses allocate
# through monge's own code, which ASan checks for use-after-free and overflows regardless.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:allocator_may_return_null=0:detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export MONGE_PLUGIN_PATH=
command -v llvm-symbolizer-14 >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer-14)"

failed=()
for t in params_test data_test map_format_test batch_test; do
  echo "fuzz: sanitized $t"
  if ! "$FUZZ_BUILD/bin/asan_$t" --gtest_brief=1 >"$FUZZ_BUILD/asan_$t.log" 2>&1; then
    tail -n 60 "$FUZZ_BUILD/asan_$t.log" >&2
    failed+=("asan_$t")
  else
    grep -E "^\[  PASSED  \]" "$FUZZ_BUILD/asan_$t.log" || true
  fi
done

mkdir -p "$FUZZ_BUILD/artifacts"
for h in tensor_file map image tar manifest idx params; do
  # New inputs go to a scratch corpus (first folder); the checked-in seeds are read only.
  work="$FUZZ_BUILD/corpus/$h"
  mkdir -p "$work"
  echo "fuzz: $h for $SECONDS_EACH s"
  if ! "$FUZZ_BUILD/bin/fuzz_$h" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
      -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$FUZZ_BUILD/artifacts/$h-" \
      "$work" "tests/fuzz/corpus/$h" >"$FUZZ_BUILD/fuzz_$h.log" 2>&1; then
    tail -n 60 "$FUZZ_BUILD/fuzz_$h.log" >&2
    failed+=("fuzz_$h")
  else
    grep -E "^stat::number_of_executed_units|^Done [0-9]+ runs" "$FUZZ_BUILD/fuzz_$h.log" | tr '\n' ' '
    echo
  fi
done

echo "fuzz: finished in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (logs in $FUZZ_BUILD/, crashing inputs in $FUZZ_BUILD/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ok"
