#!/bin/sh
# no_output.sh OUT COMMAND ARGS...: runs the command, prints "nothing written" when OUT does not
# exist afterwards, and exits with the command's exit code (for expect.sh's checks of failed runs).
out="$1"; shift
"$@"
rc=$?
[ -e "$out" ] || echo "nothing written"
exit $rc
