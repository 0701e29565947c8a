#!/usr/bin/env bash
# Data-parallel training tests, with real processes on this machine.
#   dist_test.sh MONGE WORKDIR equivalence|dead_rank|restart|hung_rank
set -euo pipefail
monge=$1 work=$2 what=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }

# Waits until RUN's log reaches iteration N (or the job ends).
wait_for_iteration() {
  local log=$1/log.jsonl n=$2 pid=$3
  for _ in $(seq 1 1200); do
    if [ -f "$log" ] && [ "$(grep -c '"iter"' "$log")" -ge "$n" ]; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# The pid of rank R among the launcher's children.
rank_pid() {
  local launcher=$1 rank=$2 p
  for p in $(pgrep -P "$launcher"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "RANK=$rank"; then echo "$p"; return 0; fi
  done
  return 1
}

case "$what" in
equivalence)
  # 2 processes x batch 8 make the same updates as 1 process x batch 16; 1 x 8 differs.
  "$monge" --threads 1 run --nproc 2 "$here/train_small.lua" "$work/two" 6 8
  "$monge" --threads 1 run "$here/train_small.lua" "$work/one" 6 16
  "$monge" --threads 1 run "$here/train_small.lua" "$work/half" 6 8
  "$monge" --threads 1 run "$here/compare.lua" "$work/two" "$work/one" same
  "$monge" --threads 1 run "$here/compare.lua" "$work/two" "$work/half" different
  # The 2-process run resumed by 1 process (batch 16) goes on exactly as the 1-process run does.
  "$monge" --threads 1 run "$here/train_small.lua" "$work/two" 8 16 60 resume | tee "$work/resume.log"
  "$monge" --threads 1 run "$here/train_small.lua" "$work/one" 8 16 60 resume
  grep -q "rank 0 of 1: trained 2 iterations" "$work/resume.log" || fail "the resumed run did not start at iteration 6"
  "$monge" --threads 1 run "$here/compare.lua" "$work/two" "$work/one" same
  ;;
dead_rank|hung_rank)
  # Rank 1 is killed (SIGKILL) or frozen (SIGSTOP) mid-run: rank 0 must stop with a clear error
  # within the timeout, the job must fail, and a second run resumes from the last checkpoint.
  timeout=30
  [ "$what" = hung_rank ] && timeout=5
  start=$(date +%s)
  "$monge" --threads 1 run --nproc 2 "$here/train_small.lua" "$work/run" 100000 8 "$timeout" >"$work/first.log" 2>&1 &
  launcher=$!
  wait_for_iteration "$work/run" 15 "$launcher" || { cat "$work/first.log"; fail "the job did not reach iteration 15"; }
  victim=$(rank_pid "$launcher" 1) || fail "rank 1 not found among the launcher's children"
  if [ "$what" = dead_rank ]; then kill -9 "$victim"; else kill -STOP "$victim"; fi
  hit=$(date +%s)
  rc=0
  wait "$launcher" || rc=$?
  took=$(( $(date +%s) - hit ))
  cat "$work/first.log"
  echo "the job ended $took s after rank 1 was hit, exit code $rc"
  [ "$rc" -ne 0 ] || fail "the job should fail"
  [ "$took" -le 40 ] || fail "the job took $took s to stop"
  grep -q "rank 0 of 2 lost the other processes" "$work/first.log" || fail "rank 0 did not report the lost rank"
  if [ "$what" = dead_rank ]; then
    grep -q "rank 1 of 2 was killed by signal 9" "$work/first.log" || fail "the launcher did not name the dead rank"
  else
    grep -q "hung for more than 5 s" "$work/first.log" || fail "rank 0 did not time out"
  fi
  ls "$work/run"/.*tmp* >/dev/null 2>&1 && fail "temporary files left in the run directory"
  done_before=$(grep -c '"iter"' "$work/run/log.jsonl")
  "$monge" --threads 1 run --nproc 2 "$here/train_small.lua" "$work/run" $((done_before + 5)) 8 30 resume >"$work/second.log" 2>&1 \
    || { cat "$work/second.log"; fail "the resumed job failed"; }
  cat "$work/second.log"
  grep -Eq "resumed from .*checkpoint.pt at iteration [1-9][0-9]*0" "$work/second.log" || fail "the second run did not resume"
  [ -f "$work/run/map.pt" ] || fail "no map after the resumed run"
  ;;
restart)
  # --max-restarts 1: the launcher restarts the job after rank 1 dies, and it resumes and finishes.
  "$monge" --threads 1 run --nproc 2 --max-restarts 1 "$here/train_small.lua" "$work/run" 60 8 >"$work/job.log" 2>&1 &
  launcher=$!
  wait_for_iteration "$work/run" 15 "$launcher" || { cat "$work/job.log"; fail "the job did not reach iteration 15"; }
  kill -9 "$(rank_pid "$launcher" 1)"
  rc=0
  wait "$launcher" || rc=$?
  cat "$work/job.log"
  [ "$rc" -eq 0 ] || fail "the restarted job failed (exit $rc)"
  grep -q "restarting all 2 ranks from the last checkpoint (restart 1 of at most 1)" "$work/job.log" || fail "no restart"
  grep -Eq "resumed from .* at iteration [1-9][0-9]*0 \(restart 1 of the job\)" "$work/job.log" || fail "the restart did not resume"
  grep -q "rank 0 of 2: trained" "$work/job.log" || fail "rank 0 did not finish"
  [ -f "$work/run/map.pt" ] || fail "no map"
  ;;
*) fail "unknown test $what" ;;
esac
echo "ok: $what"
rm -rf "$work"
