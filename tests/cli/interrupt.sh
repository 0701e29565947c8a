#!/usr/bin/env bash
# Interrupted writes leave nothing behind (issue 19): `monge apply` killed by SIGTERM or SIGINT
# while its output's temporary exists removes the temporary and writes no output; a batch over a
# tar archive killed with SIGTERM leaves no extracted member; temporaries a SIGKILLed run left are
# removed by the next run (apply: when untouched for an hour; batch: its own shard's at once); a
# symlink planted under the old predictable temporary name is not followed.
#   interrupt.sh MONGE MAP WORKDIR
set -euo pipefail
monge=$1 map=$2 work=$3
rm -rf "$work"
mkdir -p "$work/out" "$work/in"
fail() { echo "interrupt: FAIL: $*" >&2; exit 1; }
"$monge" run -e "local m = require 'monge'
m.image.save(m.rand({1, 2400, 2400}, {seed = 1}) * 2 - 1, '$work/big.png')
for i = 1, 3 do m.image.save(m.rand({1, 1600, 1600}, {seed = i}) * 2 - 1, '$work/in/m' .. i .. '.png') end"
tar -C "$work/in" -cf "$work/members.tar" m1.png m2.png m3.png

temporaries() { find "$work/out" -name '.*monge-*' | wc -l; }
# Waits until a temporary exists (the run is writing), then sends the signal.
interrupt() {  # interrupt SIGNAL COMMAND...
  local sig=$1; shift
  # Background jobs of a script start with SIGINT ignored: restore the default first.
  env --default-signal=INT "$@" >"$work/run.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 1200); do
    [ "$(temporaries)" -gt 0 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  [ "$(temporaries)" -gt 0 ] || { cat "$work/run.log" >&2; fail "$sig: no temporary appeared"; }
  kill -"$sig" "$pid"
  wait "$pid" && fail "$sig: the run was not interrupted" || true
  [ "$(temporaries)" -eq 0 ] || { find "$work/out" >&2; fail "$sig: temporaries left behind"; }
}
for sig in TERM INT; do
  interrupt $sig "$monge" --threads 1 apply "$map" "$work/big.png" "$work/out/big.png" --tile 128 --no-progress
  [ ! -e "$work/out/big.png" ] || fail "$sig: a partial output was written"
  echo "interrupt: apply $sig: no temporary, no output"
done
interrupt TERM "$monge" --threads 1 batch "$map" "$work/members.tar" --out "$work/out/batch" --tile 128 --no-progress
echo "interrupt: batch TERM: no extracted member, no temporary"

# Left by a SIGKILLed run: an old temporary is removed by the next apply, a fresh one (maybe a
# concurrent writer's) is not.
printf 'x' >"$work/out/.small.monge-0123456789abcdef.png"
printf 'x' >"$work/out/.small.monge-fedcba9876543210.png"
touch -d '2 hours ago' "$work/out/.small.monge-0123456789abcdef.png"
# The old predictable names, planted as symlinks to a file of the user's: not followed.
printf 'mine' >"$work/victim"
for pid in $(seq 1 400); do ln -sf "$work/victim" "$work/out/.small.monge-$pid.png"; done
"$monge" --threads 1 apply "$map" "$work/in/m1.png" "$work/out/small.png" --no-progress
[ -s "$work/out/small.png" ] || fail "apply wrote nothing"
[ ! -e "$work/out/.small.monge-0123456789abcdef.png" ] || fail "a stale temporary was kept"
[ -e "$work/out/.small.monge-fedcba9876543210.png" ] || fail "a fresh temporary (maybe another run's) was removed"
[ "$(cat "$work/victim")" = "mine" ] || fail "a planted symlink was followed"
echo "interrupt: ok"
