#!/usr/bin/env bash
# photo_ip_bad_input.sh MONGE WORKDIR
#
# `monge bench photo-ip` refuses bad input with a clear message before writing anything: a
# --photos folder without images, a missing folder, an unreadable photo, an unknown task, method
# or config, a learning rate out of range. Each case must exit with code 1, print the expected
# message and leave no --out folder.
set -u
monge="$1" work="$2"
rm -rf "$work" && mkdir -p "$work/empty" "$work/bad" || exit 1
printf 'not a JPEG' >"$work/bad/a.jpg"
printf 'not a PNG either' >"$work/bad/b.png"
status=0
check() {  # check REGEX ARGS...
  local regex="$1"; shift
  local out rc before=$status
  out=$("$monge" --no-env-plugins bench photo-ip --config tiny --out "$work/out" "$@" 2>&1); rc=$?
  if [ "$rc" -ne 1 ]; then echo "FAIL ($*): exit code $rc, expected 1: $out" >&2; status=1; fi
  if ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then echo "FAIL ($*): no /$regex/ in: $out" >&2; status=1; fi
  if [ -e "$work/out" ]; then echo "FAIL ($*): $work/out was written" >&2; status=1; rm -rf "$work/out"; fi
  [ "$status" -eq "$before" ] && echo "ok ($*): $(printf '%s\n' "$out" | grep -E -- "$regex" | head -1)"
}
check "photo-ip: $work/empty holds 0 image file\(s\).*at least 2 are needed" --photos "$work/empty"
check "photo-ip: no such folder: $work/missing" --photos "$work/missing"
check "photo-ip: cannot read $work/bad/a\.jpg" --photos "$work/bad"
check "photo-ip: unknown task 'deblur' \(known: gb, sr\)" --tasks gb,deblur
check "photo-ip: unknown method 'wiener2' \(known: degraded, baseline, wiener, bicubic, calibrated, wiener-calibrated, uotip, supervised\)" --methods degraded,wiener2
check "photo-ip: --config must be tiny, short or full, got 'long'" --config long
check "photo-ip: --lr must be a number in \(0, 0.1\], got '0'" --lr 0
check "photo-ip: unknown argument '--photo'" --photo "$work/empty"
exit $status
