#!/usr/bin/env bash
# A batch killed with SIGKILL mid-run, then run again, finishes every file exactly once: each
# input has exactly one "ok" record over the manifests, every output exists, no temporary file
# is left behind.
#   batch_kill.sh MONGE MAP WORKDIR
set -euo pipefail
monge=$1 map=$2 work=$3
rm -rf "$work"
mkdir -p "$work/in"
n=40
"$monge" run -e "local m = require 'monge'
for i = 1, $n do m.image.save(m.rand({1, 160, 160}, {seed = i}) * 2 - 1, '$work/in/img' .. i .. '.png') end"

"$monge" --threads 1 batch "$map" "$work/in" --out "$work/out" --tile 32 --no-progress >"$work/first.log" 2>&1 &
pid=$!
ok_lines() { grep -hc '"status": "ok"' "$work"/out/manifest*.jsonl 2>/dev/null || echo 0; }
for _ in $(seq 1 600); do
  [ "$(ok_lines)" -ge 5 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
first=$(ok_lines)
echo "killed after $first of $n files"
if [ "$first" -ge "$n" ]; then
  echo "FAIL: the batch finished before it could be killed; the test proves nothing (make the images larger)"
  exit 1
fi

"$monge" --threads 2 batch "$map" "$work/in" --out "$work/out" --tile 32 --no-progress
keys=$(grep -h '"status": "ok"' "$work"/out/manifest*.jsonl | sed 's/^{"key": "\([^"]*\)".*/\1/' | sort)
total=$(echo "$keys" | wc -l)
unique=$(echo "$keys" | sort -u | wc -l)
[ "$total" -eq "$n" ] || { echo "FAIL: $total ok records for $n files"; exit 1; }
[ "$unique" -eq "$n" ] || { echo "FAIL: only $unique distinct files among the ok records"; exit 1; }
outputs=$(find "$work/out" -name 'img*.png' | wc -l)
[ "$outputs" -eq "$n" ] || { echo "FAIL: $outputs outputs for $n files"; exit 1; }
left=$(find "$work/out" -name '.*' | wc -l)
[ "$left" -eq 0 ] || { echo "FAIL: temporary files left: $(find "$work/out" -name '.*')"; exit 1; }
echo "ok: every file restored exactly once after the kill"
rm -rf "$work"
