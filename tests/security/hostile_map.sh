#!/usr/bin/env bash
# A crafted TorchScript map cannot write or read a file of the user's through `monge info`,
# `apply`, `batch`, `eval` or Lua's monge.load_map/monge.apply: each refuses it (exit 1, an error
# naming --trust-code), the victim file keeps its bytes and no output is written. With
# --trust-code the same file does overwrite the victim: the exploit is real, so the test can fail.
#   hostile_map.sh MONGE WORKDIR SOURCE_DIR
set -euo pipefail
monge=$1 work=$2 src=$3
rm -rf "$work"
mkdir -p "$work/in"
/usr/bin/python3 "$src/tests/security/hostile_torchscript.py" "$work/evil.pt" "$work/victim.txt"
printf 'original' >"$work/victim.txt"
"$monge" run -e "require('monge').image.save(require('monge').zeros({1, 16, 16}), '$work/in/a.png')"

fail() { echo "hostile_map: FAIL: $*" >&2; exit 1; }
refused() {  # refused NAME COMMAND...: exit 1 and the --trust-code error
  local name=$1; shift
  set +e
  "$@" >"$work/$name.log" 2>&1
  local rc=$?
  set -e
  [ "$rc" -eq 1 ] || { cat "$work/$name.log" >&2; fail "$name: exit $rc, expected 1"; }
  grep -q "trust" "$work/$name.log" || { cat "$work/$name.log" >&2; fail "$name: the error does not name --trust-code"; }
  [ "$(cat "$work/victim.txt")" = "original" ] || fail "$name: the victim file was changed"
  echo "hostile_map: $name refused"
}
refused info "$monge" info "$work/evil.pt"
refused apply "$monge" apply "$work/evil.pt" "$work/in/a.png" "$work/out.png"
[ ! -e "$work/out.png" ] || fail "apply wrote an output"
refused batch "$monge" batch "$work/evil.pt" "$work/in" --out "$work/batch" --no-progress
refused eval "$monge" eval "$work/evil.pt" --data fashion-mnist:test:4 --noise none --out "$work/eval"
refused lua_load "$monge" run -e "require('monge').load_map('$work/evil.pt')"
refused lua_apply "$monge" run -e "require('monge').apply{ map = '$work/evil.pt', input = '$work/in/a.png', output = '$work/lua.png' }"
[ ! -e "$work/lua.png" ] || fail "monge.apply wrote an output"
ls -A "$work/in" | grep -q monge && fail "a temporary was left in the input folder"

# The exploit is real: trusted, the same file writes the victim.
"$monge" info "$work/evil.pt" --trust-code >/dev/null
[ "$(cat "$work/victim.txt")" = "AAAAinal" ] || fail "with --trust-code the hostile file did not act (the test proves nothing)"
echo "hostile_map: ok"
