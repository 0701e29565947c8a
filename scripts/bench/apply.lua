-- Streaming apply benchmark: MPix/s and peak RSS of `monge apply` on synthetic tiled BigTIFF
-- images of growing size, against the pure network throughput on one in-memory tile of the tile
-- size the apply uses (the ratio is the figure: it shows what streaming, halos and I/O cost).
--
--   monge run scripts/bench/apply.lua [OUT_DIR=runs/bench-apply] [SIZES_MPIX=10,100,1000]
--                                     [CHANNELS=8] [TILE=1024] [DEVICE=cpu] [SECONDS=4]
--
-- Each size runs in its own `monge apply` process so that its peak RSS is its own. The map is a
-- unet with CHANNELS base channels and depth 2 (receptive radius 30), randomly initialised: the
-- cost of inference does not depend on training. Writes OUT_DIR/results.json and report.html.
local monge = require "monge"
local bench = require "monge.bench"

local out = arg[1] or "runs/bench-apply"
local sizes = {}
for s in (arg[2] or "10,100,1000"):gmatch("[^,]+") do sizes[#sizes + 1] = assert(tonumber(s), "SIZES_MPIX: numbers, e.g. 10,100") end
local channels = tonumber(arg[3] or "8")
local tile = tonumber(arg[4] or "1024")
local device = arg[5] or "cpu"
local seconds_per_measurement = tonumber(arg[6] or "4")  -- of the pure network, before and after each size
os.execute("mkdir -p '" .. out .. "'")

local sh = bench.sh
local exe = bench.executable()

local map_file = bench.unet_map(out .. "/map", channels, device)
local map = monge.load_map(map_file)

-- Pure network throughput: one tile x tile tensor already in memory, no halo, no I/O. Measured
-- right before and right after each apply, and averaged, so that the ratio compares like with like
-- on a machine whose speed drifts.
local y = monge.rand { 1, 1, tile, tile } * 2 - 1
map:restore(y)  -- warm-up
local function network_mpix()
  local reps, t0 = 0, monge.clock()
  repeat
    map:restore(y)
    reps = reps + 1
  until monge.clock() - t0 > seconds_per_measurement and reps >= 3
  return reps * tile * tile / 1e6 / (monge.clock() - t0)
end
local threads = monge.threads()

local cpu = bench.machine()
local rows = {}
for _, mpix in ipairs(sizes) do
  local side = math.floor(math.sqrt(mpix * 1e6) / 16 + 0.5) * 16
  local input, output = out .. "/in.tif", out .. "/out.tif"
  local t = monge.clock()
  monge.image.synthetic { file = input .. "[tile,bigtiff,tile_width=256,tile_height=256]", width = side, height = side }
  local make = monge.clock() - t
  local cmd = string.format("'%s' --threads %d apply '%s' '%s' '%s[tile,bigtiff]' --tile %d --device %s --no-progress",
    exe, threads, map_file, input, output, tile, device)
  local before = network_mpix()
  local text, ok = sh(cmd)
  local net_mpix = (before + network_mpix()) / 2
  assert(ok, "monge apply failed:\n" .. text)
  local seconds = assert(tonumber(text:match(" in ([%d.]+) s on ")), "no timing in: " .. text)
  local rss = assert(tonumber(text:match("peak RSS (%d+) MiB")), "no peak RSS in: " .. text)
  local h = monge.image.header(output)
  assert(h.width == side and h.height == side, "output size differs from the input's")
  local row = { mpix = side * side / 1e6, side = side, seconds = seconds, mpix_per_s = side * side / 1e6 / seconds,
                peak_rss_mib = rss, make_seconds = make, net_mpix_per_s = net_mpix }
  row.ratio = row.mpix_per_s / net_mpix
  rows[#rows + 1] = row
  print(string.format("%8.1f MPix (%d x %d): %7.1f s, %.3f MPix/s = %.1f%% of the pure network (%.3f MPix/s), peak RSS %d MiB",
    row.mpix, side, side, seconds, row.mpix_per_s, 100 * row.ratio, net_mpix, rss))
  os.remove(input)
  os.remove(output)
end

-- results.json and report.html
local function json_rows()
  local parts = {}
  for _, r in ipairs(rows) do
    parts[#parts + 1] = string.format(
      '{"mpix": %.3f, "side": %d, "seconds": %.3f, "mpix_per_s": %.4f, "network_mpix_per_s": %.4f, "ratio_to_network": %.4f, "peak_rss_mib": %d}',
      r.mpix, r.side, r.seconds, r.mpix_per_s, r.net_mpix_per_s, r.ratio, r.peak_rss_mib)
  end
  return table.concat(parts, ",\n    ")
end
local rev = bench.git_revision()
local f = assert(io.open(out .. "/results.json.tmp", "w"))
f:write(string.format([[{
  "benchmark": "apply",
  "machine": {"cpu": "%s", "threads": %d, "device": "%s"},
  "git_revision": "%s",
  "network": {"name": "unet", "channels": %d, "depth": 2, "receptive_radius": 30},
  "tile": %d,
  "sizes": [
    %s
  ]
}
]], cpu, threads, device, rev, channels, tile, json_rows()))
f:close()
os.rename(out .. "/results.json.tmp", out .. "/results.json")

local trs, bars = {}, {}
for i, r in ipairs(rows) do
  trs[#trs + 1] = string.format("<tr><td>%.1f</td><td>%d x %d</td><td>%.1f</td><td>%.3f</td><td>%.3f</td><td>%.1f%%</td><td>%d</td></tr>",
    r.mpix, r.side, r.side, r.seconds, r.mpix_per_s, r.net_mpix_per_s, 100 * r.ratio, r.peak_rss_mib)
  local w = math.floor(400 * math.min(1, r.ratio))
  bars[#bars + 1] = string.format('<text x="0" y="%d">%.0f MPix</text><rect x="90" y="%d" width="%d" height="18" fill="#36c"/><text x="%d" y="%d">%.0f%%</text>',
    28 * i - 6, r.mpix, 28 * i - 20, w, 95 + w, 28 * i - 6, 100 * r.ratio)
end
local html = assert(io.open(out .. "/report.html.tmp", "w"))
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge apply benchmark</title>
<body style="font-family: sans-serif; max-width: 900px">
<h1>Streaming apply</h1>
<p>unet, %d base channels, depth 2 (receptive radius 30); tiles of %d pixels; %d threads on %s (%s); git %s.
The pure network runs on one in-memory %d x %d tile, measured before and after each size.</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>MPix</th><th>size</th><th>seconds</th><th>MPix/s</th><th>pure network MPix/s</th><th>of pure network</th><th>peak RSS (MiB)</th></tr>
%s
</table>
<h2>Throughput relative to the pure network</h2>
<svg width="560" height="%d" style="font: 12px sans-serif">%s</svg>
</body>
]], channels, tile, threads, cpu, device, rev, tile, tile, table.concat(trs, "\n"), 28 * #rows + 10, table.concat(bars, "\n")))
html:close()
os.rename(out .. "/report.html.tmp", out .. "/report.html")
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
