#!/usr/bin/env bash
# expect.sh EXIT_CODE 'regex1|...' ['regex2' ...] -- command args...
# Runs the command, prints its output, and fails unless it exits with EXIT_CODE and its combined
# stdout+stderr matches every extended regular expression given.
set -u
code="$1"; shift
patterns=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do patterns+=("$1"); shift; done
shift
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out"
status=0
if [ "$rc" -ne "$code" ]; then echo "expect.sh: exit code $rc, expected $code" >&2; status=1; fi
for p in "${patterns[@]}"; do
  if ! printf '%s\n' "$out" | grep -Eq -- "$p"; then echo "expect.sh: output does not match /$p/" >&2; status=1; fi
done
exit $status
