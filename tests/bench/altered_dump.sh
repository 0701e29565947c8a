#!/bin/sh
# altered_dump.sh DUMP_DIR REFERENCE: the PyTorch reference's loss check must fail (exit 1) on a
# copy of monge's first-step dump whose recorded loss_map was altered.
set -eu
work="$1.altered"
rm -rf "$work"
cp -r "$1" "$work"
sed -i -E 's/"loss_map": [^,}]+/"loss_map": 12345/' "$work/index.json"
exec "${MONGE_PYTHON:-/usr/bin/python3}" "$2" --threads 1 --iters 1 --warmup 0 --check "$work"
