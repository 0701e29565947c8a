-- Batch benchmark: images per second of `monge batch` over an archive of mixed-size images, with
-- 1 process x all threads, 1 process x 1 thread, and P processes x 1 thread (--shard i/P), all
-- measured in one run so that the ratios are not skewed by a noisy machine.
--
--   monge run scripts/bench/batch.lua [OUT_DIR=runs/bench-batch] [IMAGES=1000] [PROCESSES=all cores]
--                                     [CHANNELS=8]
--
-- Images are 8-bit grey PNGs of 48 .. 400 pixels a side (seeded), packed into a tar archive;
-- the map is a unet (CHANNELS base channels, depth 2). Writes OUT_DIR/results.json and report.html.
local monge = require "monge"
local bench = require "monge.bench"

local out = arg[1] or "runs/bench-batch"
local count = tonumber(arg[2] or "1000")
local procs = tonumber(arg[3] or tostring(monge.threads()))
local channels = tonumber(arg[4] or "8")
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

local function run(label, processes, threads)
  local dir = string.format("%s/out-%dx%d", out, processes, threads)
  os.execute("rm -rf '" .. dir .. "'")
  local cmds = {}
  for i = 0, processes - 1 do
    cmds[#cmds + 1] = string.format("'%s' -q --threads %d batch '%s' '%s/images.tar' --out '%s' --shard %d/%d --no-progress &",
      exe, threads, map, out, dir, i, processes)
  end
  local t0 = monge.clock()
  local text, ok = sh(table.concat(cmds, " ") .. " wait")
  local seconds = monge.clock() - t0
  local done = tonumber(sh("cat '" .. dir .. "'/manifest*.jsonl | grep -c '\"status\": \"ok\"'"):match("%d+"))
  assert(ok and done == count, label .. ": " .. tostring(done) .. " of " .. count .. " images done\n" .. text)
  os.execute("rm -rf '" .. dir .. "'")
  local r = { label = label, processes = processes, threads = threads, seconds = seconds, images_per_s = count / seconds,
              mpix_per_s = pixels / 1e6 / seconds }
  print(string.format("%-22s %7.1f s  %7.2f images/s  %6.3f MPix/s", label, seconds, r.images_per_s, r.mpix_per_s))
  return r
end

local all = monge.threads()
local rows = {
  run("1 process x 1 thread", 1, 1),
  run(string.format("1 process x %d threads", all), 1, all),
  run(string.format("%d processes x 1 thread", procs), procs, 1),
}
local base = rows[1].images_per_s
for _, r in ipairs(rows) do r.speedup = r.images_per_s / base end
print(string.format("speed-up over 1 process x 1 thread: %.2f (1 x %d threads), %.2f (%d x 1 thread)",
  rows[2].speedup, all, rows[3].speedup, procs))

local cpu = bench.machine()
local rev = bench.git_revision()
local parts, trs = {}, {}
for _, r in ipairs(rows) do
  parts[#parts + 1] = string.format('{"setting": "%s", "processes": %d, "threads": %d, "seconds": %.3f, "images_per_s": %.3f, "mpix_per_s": %.4f, "speedup": %.3f}',
    r.label, r.processes, r.threads, r.seconds, r.images_per_s, r.mpix_per_s, r.speedup)
  trs[#trs + 1] = string.format("<tr><td>%s</td><td>%.1f</td><td>%.2f</td><td>%.3f</td><td>%.2f</td></tr>",
    r.label, r.seconds, r.images_per_s, r.mpix_per_s, r.speedup)
end
local f = assert(io.open(out .. "/results.json", "w"))
f:write(string.format('{\n  "benchmark": "batch",\n  "machine": {"cpu": "%s", "cores": %d},\n  "git_revision": "%s",\n  "images": %d,\n  "mpix": %.3f,\n  "network": {"name": "unet", "channels": %d, "depth": 2},\n  "settings": [\n    %s\n  ]\n}\n',
  cpu, all, rev, count, pixels / 1e6, channels, table.concat(parts, ",\n    ")))
f:close()
local html = assert(io.open(out .. "/report.html", "w"))
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge batch benchmark</title>
<body style="font-family: sans-serif; max-width: 900px"><h1>Batch restoration</h1>
<p>%d grey PNG images of 48 to 400 pixels a side (%.1f MPix) in a tar archive; unet with %d base channels;
%s, %d cores; git %s.</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>setting</th><th>seconds</th><th>images/s</th><th>MPix/s</th><th>speed-up</th></tr>
%s</table></body>
]], count, pixels / 1e6, channels, cpu, all, rev, table.concat(trs, "\n")))
html:close()
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
