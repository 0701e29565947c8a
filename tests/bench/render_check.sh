#!/usr/bin/env bash
# render_check.sh MONGE REPORT.html WORKDIR [MIN_IMAGES [MIN_SVG]]
#
# Renders a report.html in a real browser (Debian's chromium, headless, no display needed) and
# fails unless the page works:
#   - the DOM after loading has at least MIN_IMAGES <img> (default 1), every one a valid embedded
#     PNG (a data: URI whose base64 decodes to a PNG with intact chunks), and MIN_SVG <svg> (default 1);
#   - the browser logged nothing from the page's console (no JavaScript error, no failed resource);
#   - the screenshot (WORKDIR/screenshot.png, 1200 x 3200: tall enough to reach the fmnist-ip
#     grid below its tables) is not blank: its pixels vary, it has coloured pixels (the SVG
#     bars) and, when MIN_IMAGES > 0, 24 x 8 blocks of near-black pixels (the Fashion-MNIST
#     image grid; text, lines and table borders have none).
# Pixels are read with monge itself (monge.image.load). Exit 0 when all hold, 1 otherwise, also
# when chromium is not installed (scripts/install-deps.sh installs it): a missing browser is a
# failed check, not a skipped one.
set -u
monge="$1" report="$2" work="$3" min_images="${4:-1}" min_svg="${5:-1}"
fail() { echo "render_check: FAIL: $*" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || fail "chromium is not installed; run scripts/install-deps.sh (the test command does)"
[ -s "$report" ] || fail "no report at $report"
rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
report=$(readlink -f "$report")
# A profile of its own: no shared state with other runs, and no writes to $HOME.
profile=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$profile"
       --window-size=1200,3200)

timeout 120 "$browser" "${flags[@]}" --screenshot="$work/screenshot.png" "file://$report" >"$work/screenshot.log" 2>&1
rc=$?
[ $rc -eq 124 ] && fail "chromium did not finish the screenshot in 120 s (log: $work/screenshot.log)"
[ -s "$work/screenshot.png" ] || fail "chromium wrote no screenshot (exit code $rc; log: $work/screenshot.log)"

timeout 120 "$browser" "${flags[@]}" --enable-logging=stderr --v=0 --dump-dom "file://$report" \
  >"$work/dom.html" 2>"$work/dom.log"
rc=$?
[ $rc -eq 124 ] && fail "chromium did not finish --dump-dom in 120 s (log: $work/dom.log)"
[ -s "$work/dom.html" ] || fail "chromium dumped no DOM (exit code $rc; log: $work/dom.log)"

# Console messages of the page (uncaught exceptions, console.error, resources that failed to load).
if grep -E ':CONSOLE[:(]' "$work/dom.log" >"$work/console.txt"; then
  fail "the page logged to the console: $(head -3 "$work/console.txt")"
fi

/usr/bin/env python3 - "$work/dom.html" "$min_images" "$min_svg" <<'EOF' || fail "DOM check failed (see above)"
import base64, binascii, struct, sys, zlib
from html.parser import HTMLParser

dom, min_images, min_svg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def check_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        if pos + 8 > len(data):
            return "truncated chunk header"
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            return f"chunk {kind!r} is truncated or corrupt"
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            if width == 0 or height == 0:
                return "empty image"
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            try:
                zlib.decompress(idat)
            except zlib.error as e:
                return f"pixel data does not decompress ({e})"
            return None if width else "no IHDR"
        pos += 12 + length
    return "no IEND chunk"

class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.svg, self.errors = 0, 0, []
    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svg += 1
        if tag != "img":
            return
        self.images += 1
        src = dict(attrs).get("src") or ""
        prefix = "data:image/png;base64,"
        if not src.startswith(prefix):
            self.errors.append(f"<img> {self.images} is not an embedded PNG: src={src[:60]!r}")
            return
        try:
            why = check_png(base64.b64decode(src[len(prefix):], validate=True))
        except binascii.Error as e:
            why = f"bad base64 ({e})"
        if why:
            self.errors.append(f"<img> {self.images}: {why}")

page = Page()
with open(dom, encoding="utf-8") as f:
    page.feed(f.read())
if page.images < min_images:
    page.errors.append(f"{page.images} <img> in the rendered page, expected at least {min_images}")
if page.svg < min_svg:
    page.errors.append(f"{page.svg} <svg> in the rendered page, expected at least {min_svg}")
for e in page.errors:
    print("render_check: " + e, file=sys.stderr)
if page.errors:
    sys.exit(1)
print(f"render_check: DOM ok: {page.images} embedded PNG image(s), {page.svg} SVG plot(s)")
EOF

cat >"$work/pixels.lua" <<'EOF'
local monge = require "monge"
local img = monge.image.load(arg[1]):narrow(1, 1, 3)          -- RGB of RGB(A), in [-1, 1]
local h, w = img:size(2), img:size(3)
local grey = img:mean(1)                                       -- 1 x H x W
local std = grey:std():item()
local not_white = grey:lt(0.9):float():mean():item()
local coloured = (img:max(1) - img:min(1)):gt(0.4):float():sum():item()
-- Pixels at the corner of a 24 x 8 block of near-black pixels: image content, never text, lines or borders.
local dark = grey:lt(-0.7):float():unsqueeze(1)
local runs = monge.avg_pool2d(dark, { 8, 24 }, 1):gt(0.999):float():sum():item()
print(string.format("render_check: screenshot %dx%d: pixel sd %.3f, %.1f%% not white, %d coloured pixels, %d pixels in dark blocks",
  w, h, std, 100 * not_white, coloured, runs))
local problems = {}
if std < 0.05 or not_white < 0.01 then problems[#problems + 1] = "the page is blank" end
if coloured < 500 then problems[#problems + 1] = "no coloured pixels: the SVG charts did not render" end
-- A page with embedded images (image grids) must show them; a page of plots only has no dark blocks.
if tonumber(arg[2]) > 0 and runs < 200 then problems[#problems + 1] = "no large dark areas: the image grid did not render" end
if #problems > 0 then
  io.stderr:write("render_check: " .. table.concat(problems, "; ") .. "\n")
  os.exit(1)
end
EOF
"$monge" --no-env-plugins -q run "$work/pixels.lua" "$work/screenshot.png" "$min_images" 2>&1 || fail "the screenshot looks wrong (see above)"
echo "render_check: ok: $report renders"
