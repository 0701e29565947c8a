-- Streaming apply benchmark: MPix/s and peak RSS of `monge apply` on synthetic tiled BigTIFF
-- images of growing size, in fp32 and bf16 side by side, against the pure network throughput on
-- one in-memory tile of the tile size the apply uses (the ratio shows what streaming, halos and
-- I/O cost), with the accuracy of bf16 against fp32 in 8-bit output levels.
--
--   monge run scripts/bench/apply.lua [OUT_DIR=runs/bench-apply] [SIZES_MPIX=10,100,1000]
--                                     [CHANNELS=8] [TILE=1024] [DEVICE=cpu] [SECONDS=4]
--                                     [PRECISIONS=fp32,bf16] [MAP=a random unet]
--
-- PRECISIONS may add fp32-uncached: fp32 with the CPU tensor cache off (as before the cache), and
-- bf16-libtorch: bf16 through LibTorch's ops rather than the unet's fused oneDNN graph.
-- Each size and precision runs in its own `monge apply --precision P` process so that its peak RSS
-- is its own. bf16 is left out (and the report says so) where it does not run: a CPU without bf16
-- convolutions. The map is a unet with CHANNELS base channels and depth 2 (receptive radius 30)
-- after one training step, or MAP, a map file (e.g. a trained one, whose bf16 accuracy is the
-- one that matters; CHANNELS is then ignored). Writes OUT_DIR/results.json and report.html.
local monge = require "monge"
local bench = require "monge.bench"

local out = arg[1] or "runs/bench-apply"
local sizes = {}
for s in (arg[2] or "10,100,1000"):gmatch("[^,]+") do sizes[#sizes + 1] = assert(tonumber(s), "SIZES_MPIX: numbers, e.g. 10,100") end
local channels = tonumber(arg[3] or "8")
local tile = tonumber(arg[4] or "1024")
local device = arg[5] or "cpu"
local seconds_per_measurement = tonumber(arg[6] or "4")  -- of the pure network, before and after each apply
local precisions, left_out = bench.precisions(arg[7], device)
os.execute("mkdir -p '" .. out .. "'")

local sh = bench.sh
local exe = bench.executable()

local map_file = arg[8] or bench.unet_map(out .. "/map", channels, device)
local map = monge.load_map(map_file)
map:to(device)
local network = arg[8] and ("map " .. map_file .. " (" .. map.network .. ")")
  or string.format("unet, %d base channels, depth 2 (receptive radius 30)", channels)

-- Pure network throughput: one tile x tile tensor already in memory, no halo, no I/O. Measured
-- right before and right after each apply, and averaged, so that the ratio compares like with like
-- on a machine whose speed drifts.
local y = monge.rand { 1, 1, tile, tile } * 2 - 1
local function network_mpix(setting)
  return bench.with_setting(setting, function(precision)
    map:restore(y, { precision = precision })  -- warm-up
    local reps, t0 = 0, monge.clock()
    repeat
      map:restore(y, { precision = precision })
      reps = reps + 1
    until monge.clock() - t0 > seconds_per_measurement and reps >= 3
    return reps * tile * tile / 1e6 / (monge.clock() - t0)
  end)
end
local threads = monge.threads()

-- One `monge apply` of `input` in `setting` (see bench.precisions), with the pure network
-- measured around it.
local function run_apply(input, output, side, setting)
  local precision, env, flags = bench.setting(setting)
  local cmd = string.format("%s'%s' --threads %d apply '%s' '%s' '%s[tile,bigtiff]' --tile %d --device %s --precision %s %s--no-progress",
    env, exe, threads, map_file, input, output, tile, device, precision, flags)
  local before = network_mpix(setting)
  local text, ok = sh(cmd)
  local net_mpix = (before + network_mpix(setting)) / 2
  assert(ok, "monge apply failed:\n" .. text)
  assert(text:find(" s on [%w:]+, " .. precision .. "[ ,]"), "monge apply did not run in " .. precision .. ":\n" .. text)
  local seconds = assert(tonumber(text:match(" in ([%d.]+) s on ")), "no timing in: " .. text)
  local rss = assert(tonumber(text:match("peak RSS (%d+) MiB")), "no peak RSS in: " .. text)
  local h = monge.image.header(output)
  assert(h.width == side and h.height == side, "output size differs from the input's")
  local r = { seconds = seconds, mpix_per_s = side * side / 1e6 / seconds, peak_rss_mib = rss, net_mpix_per_s = net_mpix }
  r.ratio = r.mpix_per_s / net_mpix
  return r
end

local cpu = bench.machine()
if left_out ~= "" then print("apply benchmark: " .. left_out) end
local rows = {}
for _, mpix in ipairs(sizes) do
  local side = math.floor(math.sqrt(mpix * 1e6) / 16 + 0.5) * 16
  local input = out .. "/in.tif"
  local t = monge.clock()
  monge.image.synthetic { file = input .. "[tile,bigtiff,tile_width=256,tile_height=256]", width = side, height = side }
  local row = { mpix = side * side / 1e6, side = side, make_seconds = monge.clock() - t, runs = {} }
  for _, p in ipairs(precisions) do
    local r = run_apply(input, out .. "/out-" .. p .. ".tif", side, p)
    row.runs[p] = r
    print(string.format("%8.1f MPix (%d x %d) %s: %7.1f s, %.3f MPix/s = %.1f%% of the pure network (%.3f MPix/s), peak RSS %d MiB",
      row.mpix, side, side, p, r.seconds, r.mpix_per_s, 100 * r.ratio, r.net_mpix_per_s, r.peak_rss_mib))
  end
  if row.runs.fp32 and row.runs.bf16 then
    row.speedup = row.runs.bf16.mpix_per_s / row.runs.fp32.mpix_per_s
    row.network_speedup = row.runs.bf16.net_mpix_per_s / row.runs.fp32.net_mpix_per_s
    row.accuracy = bench.level_stats(monge.image.difference(out .. "/out-fp32.tif", out .. "/out-bf16.tif").histogram)
    local a = row.accuracy
    print(string.format("%8.1f MPix bf16 / fp32: %.2fx (pure network %.2fx); bf16 against fp32: max %d levels, 99.9%% within %d, %.4f%% within 1, mean %.4f",
      row.mpix, row.speedup, row.network_speedup, a.max, a.p999, 100 * a.within1, a.mean))
  end
  local ops = row.runs["bf16-libtorch"]
  if ops and row.runs.bf16 then
    print(string.format("%8.1f MPix bf16 (the unet's fused oneDNN graph) / bf16-libtorch: %.2fx (pure network %.2fx)", row.mpix,
      row.runs.bf16.mpix_per_s / ops.mpix_per_s, row.runs.bf16.net_mpix_per_s / ops.net_mpix_per_s))
  end
  local uncached = row.runs["fp32-uncached"]
  if uncached then
    row.over_uncached = {}
    for _, p in ipairs { "fp32", "bf16" } do
      if row.runs[p] then
        row.over_uncached[p] = row.runs[p].mpix_per_s / uncached.mpix_per_s
        print(string.format("%8.1f MPix %s / fp32-uncached: %.2fx (pure network %.2fx)", row.mpix, p, row.over_uncached[p],
          row.runs[p].net_mpix_per_s / uncached.net_mpix_per_s))
      end
    end
  end
  rows[#rows + 1] = row
  os.remove(input)
  for _, p in ipairs(precisions) do os.remove(out .. "/out-" .. p .. ".tif") end
end

-- results.json (monge.json.encode; numbers to the places that mean something) and report.html
local fixed, null = bench.fixed, monge.json.null
local function json_run(r)
  if not r then return null end
  return { seconds = fixed(r.seconds, 3), mpix_per_s = fixed(r.mpix_per_s, 4), network_mpix_per_s = fixed(r.net_mpix_per_s, 4),
           ratio_to_network = fixed(r.ratio, 4), peak_rss_mib = r.peak_rss_mib }
end
local function json_accuracy(a)
  if not a then return null end
  return { max_levels = a.max, p999_levels = a.p999, within_1_level = fixed(a.within1, 6), mean_levels = fixed(a.mean, 6),
           samples = a.samples }
end
local sizes_json = {}
for _, r in ipairs(rows) do
  local over = r.over_uncached
  sizes_json[#sizes_json + 1] = {
    mpix = fixed(r.mpix, 3), side = r.side, fp32 = json_run(r.runs.fp32), bf16 = json_run(r.runs.bf16),
    fp32_uncached = json_run(r.runs["fp32-uncached"]), bf16_speedup = fixed(r.speedup, 4),
    bf16_network_speedup = fixed(r.network_speedup, 4), bf16_vs_fp32 = json_accuracy(r.accuracy),
    speedup_over_fp32_uncached = over and { fp32 = fixed(over.fp32, 4), bf16 = fixed(over.bf16, 4) } or null,
  }
end
local rev = bench.git_revision()
bench.write_json(out .. "/results.json", {
  benchmark = "apply",
  machine = { cpu = cpu, threads = threads, device = device, cpu_bf16_native = select(2, monge.cpu_bf16()) },
  git_revision = rev, network = network, tile = tile, precisions = precisions, note = left_out, sizes = sizes_json,
})

local trs, bars, i = {}, {}, 0
for _, r in ipairs(rows) do
  for _, p in ipairs(precisions) do
    local run = r.runs[p]
    i = i + 1
    local accuracy = ""
    if p == "bf16" and r.accuracy then
      accuracy = string.format("%.2fx; max %d, 99.9%% within %d levels", r.speedup, r.accuracy.max, r.accuracy.p999)
    end
    if r.over_uncached and r.over_uncached[p] then
      accuracy = accuracy .. string.format("%s%.2fx fp32-uncached", accuracy == "" and "" or "; ", r.over_uncached[p])
    end
    trs[#trs + 1] = string.format("<tr><td>%.1f</td><td>%d x %d</td><td>%s</td><td>%.1f</td><td>%.3f</td><td>%.3f</td><td>%.1f%%</td><td>%d</td><td>%s</td></tr>",
      r.mpix, r.side, r.side, p, run.seconds, run.mpix_per_s, run.net_mpix_per_s, 100 * run.ratio, run.peak_rss_mib, accuracy)
    local w = math.floor(400 * math.min(1, run.ratio))
    bars[#bars + 1] = string.format('<text x="0" y="%d">%.0f MPix %s</text><rect x="120" y="%d" width="%d" height="18" fill="#36c"/><text x="%d" y="%d">%.0f%%</text>',
      28 * i - 6, r.mpix, p, 28 * i - 20, w, 125 + w, 28 * i - 6, 100 * run.ratio)
  end
end
local html = assert(io.open(out .. "/report.html.tmp", "w"))
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge apply benchmark</title>
<body style="font-family: sans-serif; max-width: 1000px">
<h1>Streaming apply</h1>
<p>%s; tiles of %d pixels; %d threads on %s (%s); git %s.
The pure network runs on one in-memory %d x %d tile in the same precision, measured before and after each apply.
bf16 accuracy: differences from the fp32 output in 8-bit levels. %s</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>MPix</th><th>size</th><th>precision</th><th>seconds</th><th>MPix/s</th><th>pure network MPix/s</th><th>of pure network</th><th>peak RSS (MiB)</th><th>bf16 / fp32; accuracy; over fp32-uncached</th></tr>
%s
</table>
<h2>Throughput relative to the pure network</h2>
<svg width="600" height="%d" style="font: 12px sans-serif">%s</svg>
</body>
]], network, tile, threads, cpu, device, rev, tile, tile, left_out, table.concat(trs, "\n"), 28 * i + 10, table.concat(bars, "\n")))
html:close()
os.rename(out .. "/report.html.tmp", out .. "/report.html")
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
