-- Batch benchmark: images per second of `monge batch` over an archive of mixed-size images, with
-- 1 process x all threads, 1 process x 1 thread, and P processes x 1 thread (--shard i/P), each in
-- fp32 and bf16, all measured in one run so that the ratios are not skewed by a noisy machine;
-- with the pure network's figure for each precision and the accuracy of bf16 against fp32.
--
--   monge run scripts/bench/batch.lua [OUT_DIR=runs/bench-batch] [IMAGES=1000] [PROCESSES=all cores]
--                                     [CHANNELS=8] [PRECISIONS=fp32,bf16]
--
-- PRECISIONS may add fp32-uncached (fp32 with the CPU tensor cache off, as before the cache),
-- fp32-unrounded (every window at its own size, --shape-step 0) and fp32-before (the cache off,
-- OpenBLAS's threads on every core and windows at their own size, as monge ran before issue 21)
-- and bf16-libtorch (bf16 through LibTorch's ops, not the unet's fused oneDNN graph).
-- Images are 8-bit grey PNGs of 48 .. 400 pixels a side (seeded), packed into a tar archive;
-- the map is a unet (CHANNELS base channels, depth 2). bf16 is left out (and the report says so)
-- on a CPU without bf16 convolutions. Writes OUT_DIR/results.json and report.html.
local monge = require "monge"
local bench = require "monge.bench"

local out = arg[1] or "runs/bench-batch"
local count = tonumber(arg[2] or "1000")
local procs = tonumber(arg[3] or tostring(monge.threads()))
local channels = tonumber(arg[4] or "8")
local precisions, left_out = bench.precisions(arg[5], "cpu")
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "/images'")

local sh = bench.sh
local exe = bench.executable()

local map = bench.unet_map(out .. "/map", channels, "cpu")

-- The archive: sizes drawn from a seeded generator.
local sizes = monge.rand({ count, 2 }, { seed = 11 }) * 352 + 48
local pixels = 0
for i = 1, count do
  local h, w = math.floor(sizes[i][1]:item()), math.floor(sizes[i][2]:item())
  pixels = pixels + h * w
  monge.image.synthetic { file = string.format("%s/images/%04d.png", out, i), width = w, height = h, seed = i }
end
assert(sh(string.format("cd '%s' && tar -cf images.tar images && rm -rf images", out)))
print(string.format("batch: %d images, %.1f MPix in all, %s/images.tar", count, pixels / 1e6, out))

-- One setting in one precision; the outputs of the P-process runs are kept (keep = true) to
-- compare the precisions.
local function run(label, processes, threads, setting, keep)
  local precision, env, flags = bench.setting(setting)
  local dir = string.format("%s/out-%dx%d-%s", out, processes, threads, setting)
  os.execute("rm -rf '" .. dir .. "'")
  local cmds = {}
  for i = 0, processes - 1 do
    cmds[#cmds + 1] = string.format("%s'%s' -q --threads %d batch '%s' '%s/images.tar' --out '%s' --shard %d/%d --precision %s %s--no-progress &",
      env, exe, threads, map, out, dir, i, processes, precision, flags)
  end
  local t0 = monge.clock()
  local text, ok = sh(table.concat(cmds, " ") .. " wait")
  local seconds = monge.clock() - t0
  local done = 0
  for file in sh("ls '" .. dir .. "'/manifest*.jsonl"):gmatch("[^\n]+") do
    for line in io.lines(file) do
      local record = monge.json.decode(line)
      if record.status == "ok" and record.precision == precision then done = done + 1 end
    end
  end
  assert(ok and done == count, label .. " " .. setting .. ": " .. tostring(done) .. " of " .. count .. " images done\n" .. text)
  if not keep then os.execute("rm -rf '" .. dir .. "'") end
  local r = { label = label, precision = setting, processes = processes, threads = threads, seconds = seconds,
              images_per_s = count / seconds, mpix_per_s = pixels / 1e6 / seconds, dir = dir }
  print(string.format("%-22s %s %7.1f s  %7.2f images/s  %6.3f MPix/s", label, setting, seconds, r.images_per_s, r.mpix_per_s))
  return r
end

-- The pure network on one image of the mean size (224 x 224), 1 thread, images per second.
local function network_images_per_s(setting)
  local m, x = monge.load_map(map), monge.rand { 1, 1, 224, 224 } * 2 - 1
  local threads = monge.threads()
  monge.set_threads(1)
  local rate = bench.with_setting(setting, function(precision)
    m:restore(x, { precision = precision })
    local reps, t0 = 0, monge.clock()
    repeat
      m:restore(x, { precision = precision })
      reps = reps + 1
    until monge.clock() - t0 > 3 and reps >= 5
    return reps / (monge.clock() - t0)
  end)
  monge.set_threads(threads)
  return rate
end

-- bf16 against fp32 over every image of the P-process runs: one histogram of level differences.
local function accuracy(fp32_dir, bf16_dir)
  local hist
  for i = 1, count do
    local name = string.format("/images/%04d.png", i)
    local h = monge.image.difference(fp32_dir .. name, bf16_dir .. name).histogram
    hist = hist and hist + h or h
  end
  return bench.level_stats(hist)
end

if left_out ~= "" then print("batch benchmark: " .. left_out) end
local all = monge.threads()
local settings = { { "1 process x 1 thread", 1, 1 }, { string.format("1 process x %d threads", all), 1, all },
                   { string.format("%d processes x 1 thread", procs), procs, 1 } }
local rows, base, last = {}, {}, {}
for s, setting in ipairs(settings) do
  for _, p in ipairs(precisions) do
    local r = run(setting[1], setting[2], setting[3], p, s == #settings)
    base[p] = base[p] or r.images_per_s
    r.speedup = r.images_per_s / base[p]
    rows[#rows + 1], last[p] = r, r
  end
end
local network = {}
for _, p in ipairs(precisions) do
  network[p] = network_images_per_s(p)
  print(string.format("pure network, one 224 x 224 image, 1 thread, %s: %.2f images/s", p, network[p]))
end
local acc, bf16_speedup
if last.fp32 and last.bf16 then
  bf16_speedup = last.bf16.images_per_s / last.fp32.images_per_s
  acc = accuracy(last.fp32.dir, last.bf16.dir)
  print(string.format("%s: bf16 / fp32 %.2fx (pure network %.2fx); bf16 against fp32: max %d levels, 99.9%% within %d, %.4f%% within 1",
    last.bf16.label, bf16_speedup, network.bf16 / network.fp32, acc.max, acc.p999, 100 * acc.within1))
end
if last.fp32 and last["fp32-unrounded"] then
  -- Rounded window shapes (--shape-step) must not change the output: 0 levels apart.
  local r = accuracy(last["fp32-unrounded"].dir, last.fp32.dir)
  print(string.format("%s: fp32 (rounded window shapes) against fp32-unrounded: max %d levels, %.4f%% identical",
    last.fp32.label, r.max, 100 * r.within0))
end
for _, ref in ipairs { "fp32-before", "fp32-uncached", "fp32-unrounded", "bf16-libtorch" } do
  if last[ref] then
    for _, p in ipairs { "fp32", "bf16", "fp32-uncached", "fp32-unrounded" } do
      if last[p] and p ~= ref then
        print(string.format("%s: %s / %s %.2fx (pure network %.2fx)", last[p].label, p, ref,
          last[p].images_per_s / last[ref].images_per_s, network[p] / network[ref]))
      end
    end
  end
end
for _, r in pairs(last) do os.execute("rm -rf '" .. r.dir .. "'") end
print(string.format("speed-up over 1 process x 1 thread (%s): %.2f (1 x %d threads), %.2f (%d x 1 thread)", precisions[1],
  rows[1 + #precisions].images_per_s / rows[1].images_per_s, all, rows[1 + 2 * #precisions].images_per_s / rows[1].images_per_s, procs))

local cpu = bench.machine()
local rev = bench.git_revision()
local fixed = bench.fixed
local parts, trs = {}, {}
for _, r in ipairs(rows) do
  parts[#parts + 1] = { setting = r.label, precision = r.precision, processes = r.processes, threads = r.threads,
                        seconds = fixed(r.seconds, 3), images_per_s = fixed(r.images_per_s, 3), mpix_per_s = fixed(r.mpix_per_s, 4),
                        speedup = fixed(r.speedup, 3) }
  trs[#trs + 1] = string.format("<tr><td>%s</td><td>%s</td><td>%.1f</td><td>%.2f</td><td>%.3f</td><td>%.2f</td></tr>",
    r.label, r.precision, r.seconds, r.images_per_s, r.mpix_per_s, r.speedup)
end
local nets = {}
for _, p in ipairs(precisions) do nets[p] = fixed(network[p], 3) end
local acc_json = acc and { setting = last.bf16.label, bf16_speedup = fixed(bf16_speedup, 4), max_levels = acc.max,
                           p999_levels = acc.p999, within_1_level = fixed(acc.within1, 6), mean_levels = fixed(acc.mean, 6) }
  or monge.json.null
bench.write_json(out .. "/results.json", {
  benchmark = "batch", machine = { cpu = cpu, cores = all, cpu_bf16_native = select(2, monge.cpu_bf16()) }, git_revision = rev,
  images = count, mpix = fixed(pixels / 1e6, 3), network = { name = "unet", channels = channels, depth = 2 }, note = left_out,
  network_images_per_s_224 = nets, bf16_vs_fp32 = acc_json, settings = parts,
})
local html = assert(io.open(out .. "/report.html", "w"))
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge batch benchmark</title>
<body style="font-family: sans-serif; max-width: 900px"><h1>Batch restoration</h1>
<p>%d grey PNG images of 48 to 400 pixels a side (%.1f MPix) in a tar archive; unet with %d base channels;
%s, %d cores; git %s. Speed-up: over 1 process x 1 thread in the same precision. %s</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>setting</th><th>precision</th><th>seconds</th><th>images/s</th><th>MPix/s</th><th>speed-up</th></tr>
%s</table>
<p>%s</p></body>
]], count, pixels / 1e6, channels, cpu, all, rev, left_out, table.concat(trs, "\n"),
  acc and string.format("%s: bf16 %.2fx fp32; bf16 against fp32: max %d levels, 99.9%% within %d", last.bf16.label, bf16_speedup, acc.max, acc.p999) or ""))
html:close()
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
