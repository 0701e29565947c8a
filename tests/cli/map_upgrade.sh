#!/usr/bin/env bash
# Old maps: `monge map downgrade` writes a format-1 or -2 PyTorch archive (what monge 0.1 wrote); it is
# refused without --trust-code, `monge map upgrade --trust-code` converts it back to format 3, and
# the original, the trusted old file and the upgraded file restore an image to the same bytes.
#   map_upgrade.sh MONGE MAP IMAGE WORKDIR
set -euo pipefail
monge=$1 map=$2 image=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
fail() { echo "map_upgrade: FAIL: $*" >&2; exit 1; }
"$monge" map downgrade "$map" "$work/old.pt" | grep -q "(format [12], a PyTorch archive for monge 0.1)" || fail "downgrade"
if "$monge" info "$work/old.pt" >"$work/untrusted.log" 2>&1; then fail "an old map was read without --trust-code"; fi
grep -q "monge map upgrade" "$work/untrusted.log" || fail "the refusal does not say how to convert: $(cat "$work/untrusted.log")"
"$monge" info "$work/old.pt" --trust-code | grep -q "map format [12]: a PyTorch archive" || fail "info --trust-code"
"$monge" map upgrade "$work/old.pt" "$work/new.pt" --trust-code | grep -q "the same output on a probe input" || fail "upgrade"
"$monge" info "$work/new.pt" | grep -q "map format 3: data only" || fail "the upgraded map is not format 3"
"$monge" apply "$map" "$image" "$work/a.png" --no-progress
"$monge" apply "$work/old.pt" "$image" "$work/b.png" --no-progress --trust-code
"$monge" apply "$work/new.pt" "$image" "$work/c.png" --no-progress
cmp -s "$work/a.png" "$work/b.png" || fail "the old map restores differently"
cmp -s "$work/a.png" "$work/c.png" || fail "the upgraded map restores differently"
echo "map_upgrade: ok"
