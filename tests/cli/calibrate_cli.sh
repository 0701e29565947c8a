#!/usr/bin/env bash
# `monge calibrate` end to end (issue 18): the blur's sigma and the noise level come back within 5%
# from unpaired sets on a simulated measured set (--degrade), and the blur's from a folder of PNG
# files written from other images; a downsampling factor comes from the sizes; bad command lines exit 2 and bad
# inputs 1, each with a message that says what to do.
#   calibrate_cli.sh MONGE WORKDIR
set -euo pipefail
monge=$1 work=$2
rm -rf "$work"
mkdir -p "$work"
fail() { echo "calibrate_cli: FAIL: $*" >&2; exit 1; }
within() {  # within JSON KEY WANT TOLERANCE
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
path, key, want, tol = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
got = json.load(open(path))[key]
err = abs(got / want - 1)
print(f"calibrate_cli: {key} = {got:.4f}, true {want}, error {100 * err:.2f}% (allowed {100 * tol:.0f}%)")
sys.exit(0 if err < tol else 1)
PY
}
run() { "$monge" --threads 2 calibrate "$@"; }

# 1. Simulated: clean training images against blurred, noisy test images (other images).
run --clean fashion-mnist:train:1000 --measured fashion-mnist:test:1000 --operator gaussian_blur:size=13 \
    --degrade gaussian_blur:size=13,sigma=1.5 --noise gaussian:sigma=0.05 --seed 4 --iterations 16 \
    --json "$work/sim.json" | tee "$work/sim.log"
grep -Eq "^calibrate: gaussian_blur sigma = 1\.[45][0-9]* \(searched 0\.3 to 6\)" "$work/sim.log" || fail "no estimate line"
grep -Eq "^  operator gaussian_blur:sigma=[0-9.]+,size=13$" "$work/sim.log" || fail "no operator spec"
within "$work/sim.json" value 1.5 0.05 || fail "blur sigma off"
within "$work/sim.json" noise_sigma 0.05 0.05 || fail "noise sigma off"

# 2. A folder of 8-bit PNG files (blur 2.5), as a user has them. No added noise: a file clips
# values to [0, 1] and Fashion-MNIST's background is 0, so clipped noise would no longer be the
# white Gaussian noise the estimate assumes; what is left is the 8-bit rounding (sd 0.0023).
mkdir -p "$work/measured"
"$monge" --threads 2 run -e "
local monge = require 'monge'
local x = monge.data.fashion_mnist { split = 'test', limit = 600 }.images
local y = monge.operator('gaussian_blur', { size = 13, sigma = 2.5 })(x)
for i = 1, y:size(1) do monge.image.save(y[i], string.format('$work/measured/%04d.png', i)) end"
[ "$(ls "$work/measured" | wc -l)" -eq 600 ] || fail "the measured folder was not written"
run --clean fashion-mnist:train:1000 --measured "$work/measured" --operator gaussian_blur:size=13 --iterations 16 \
    --json "$work/folder.json" | tee "$work/folder.log"
within "$work/folder.json" value 2.5 0.05 || fail "blur sigma off (folder)"
/usr/bin/python3 -c "import json,sys; s=json.load(open('$work/folder.json'))['noise_sigma']; print('calibrate_cli: folder noise', s); sys.exit(0 if s < 0.01 else 1)" \
  || fail "noise found in a noiseless folder"

# 3. Downsampling: the factor from the sizes, then the noise.
run --clean fashion-mnist:train:500 --measured fashion-mnist:test:500 --operator downsample \
    --degrade downsample:factor=2 --noise gaussian:sigma=0.05 --json "$work/down.json" | tee "$work/down.log"
grep -Eq "^calibrate: downsample factor = 2 \(from the image sizes\)" "$work/down.log" || fail "no factor"
within "$work/down.json" noise_sigma 0.05 0.1 || fail "noise sigma off (downsample)"

# 4. Bad command lines (exit 2) and bad inputs (exit 1).
expect() {  # expect CODE PATTERN ARGS...
  local code=$1 pattern=$2; shift 2
  set +e
  "$monge" calibrate "$@" >"$work/err.log" 2>&1
  local rc=$?
  set -e
  [ "$rc" -eq "$code" ] || { cat "$work/err.log" >&2; fail "exit $rc, expected $code for: $*"; }
  grep -Eq -- "$pattern" "$work/err.log" || { cat "$work/err.log" >&2; fail "no /$pattern/ for: $*"; }
}
expect 2 "--clean is required" --measured x --operator gaussian_blur
expect 2 "--range needs LO,HI with LO < HI, got '5,1'" --clean a --measured b --operator gaussian_blur --range 5,1
expect 2 "unknown option '--estimat' \(did you mean '--estimate'\?\)" --clean a --measured b --operator gaussian_blur --estimat sigma
expect 2 "--operator gives sigma=1 and --estimate asks for it" --clean a --measured b --operator gaussian_blur:sigma=1
expect 2 "--noise and --seed go with --degrade" --clean a --measured b --operator gaussian_blur --noise gaussian:sigma=0.1
expect 1 "gives 28x28 measurements of the clean images, the measured set is 14x14" --clean fashion-mnist:train:50 \
  --measured fashion-mnist:test:50 --degrade downsample:factor=2 --operator gaussian_blur --iterations 2
expect 1 "calibrate: .*nope" --clean "$work/nope" --measured fashion-mnist:test:50 --operator gaussian_blur
echo "calibrate_cli: all checks passed"
