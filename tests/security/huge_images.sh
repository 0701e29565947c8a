#!/usr/bin/env bash
# Bounded work from small files (issue 19): a 92-byte PNG claiming 100000 x 100000 pixels is
# refused on its header, by monge.image.load (default cap 2^28) and by monge apply (--max-pixels,
# default 2^30), in seconds and without output; a JPEG that ends early is an error for both, and
# so is a JPEG whose frame header claims more rows than its data holds (libjpeg would fill them
# with grey and only warn).
#   huge_images.sh MONGE MAP WORKDIR
set -euo pipefail
monge=$1 map=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
fail() { echo "huge_images: FAIL: $*" >&2; exit 1; }
/usr/bin/python3 - "$work/huge.png" <<'PY'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 1, 0, 0, 0, 0)  # 1-bit grey
row = zlib.compress(b"\x00" * (1 + 100000 // 8))  # the first row only: the file ends early as well
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b""))
PY
expect_error() {  # expect_error NAME PATTERN COMMAND...
  local name=$1 pattern=$2; shift 2
  set +e
  timeout 60 "$@" >"$work/$name.log" 2>&1
  local rc=$?
  set -e
  [ "$rc" -eq 1 ] || { cat "$work/$name.log" >&2; fail "$name: exit $rc, expected 1"; }
  grep -Eq -- "$pattern" "$work/$name.log" || { cat "$work/$name.log" >&2; fail "$name: no /$pattern/"; }
  echo "huge_images: $name refused"
}
expect_error load "100000 x 100000 pixels, more than the limit of 268435456 .*nothing was decoded" \
  "$monge" run -e "require('monge').image.load('$work/huge.png')"
expect_error apply "100000 x 100000 pixels is more than --max-pixels 1073741824" \
  "$monge" apply "$map" "$work/huge.png" "$work/out.png" --no-progress
[ ! -e "$work/out.png" ] || fail "apply wrote an output"
"$monge" run -e "local m = require 'monge'; m.image.save(m.rand({3, 256, 256}, {seed = 1}) * 2 - 1, '$work/full.jpg')"
head -c 12000 "$work/full.jpg" >"$work/short.jpg"
expect_error load_truncated "short\.jpg: cannot (read|decode) image" \
  "$monge" run -e "require('monge').image.load('$work/short.jpg')"
expect_error apply_truncated "short\.jpg.*(truncated|corrupt)" \
  "$monge" apply "$map" "$work/short.jpg" "$work/short.png" --no-progress
[ ! -e "$work/short.png" ] || fail "apply wrote an output for a truncated input"
# A JPEG whose frame header claims four times the rows its data holds: libjpeg completes it with
# grey and only warns ("premature end of data segment"); monge refuses it and writes nothing.
/usr/bin/python3 - "$work/full.jpg" "$work/tall.jpg" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
i = 2
while i + 9 < len(d):
    marker, length = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
    if marker in (0xC0, 0xC1, 0xC2):
        h, w = struct.unpack(">HH", d[i + 5:i + 9])
        d[i + 5:i + 7] = struct.pack(">H", 4 * h)
        break
    i += 2 + length
open(sys.argv[2], "wb").write(d)
PY
expect_error load_tall "tall\.jpg: its image data ends before the image does .*premature end" \
  "$monge" run -e "require('monge').image.load('$work/tall.jpg')"
expect_error apply_tall "tall\.jpg: its image data ends before the image does .*nothing was written" \
  "$monge" apply "$map" "$work/tall.jpg" "$work/tall.png" --no-progress
[ ! -e "$work/tall.png" ] || fail "apply wrote an output for a JPEG whose data ends early"
ls -A "$work" | grep -q "monge-" && fail "apply left a temporary behind"
echo "huge_images: ok"
