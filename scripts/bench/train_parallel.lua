-- Data-parallel training speed-up: the quickstart's step (unet 16 / potential 16, GB task) with
-- 1 process x 1 thread (batch B), P processes x 1 thread (batch B each: global batch P x B), and
-- 1 process x P threads with batch P x B (the same updates as the P processes), in one run.
--
--   monge bench train-parallel [OUT_DIR=runs/bench-train-parallel] [ITERS=60] [PROCESSES=all cores]
--                              [BATCH=64] [ROUNDS=3]
--
-- Throughput is counted in training samples per second (iterations/s x global batch). Each
-- setting runs in processes of its own (`monge run --nproc P`, one untimed warm-up iteration);
-- the settings alternate over ROUNDS rounds (in a rotated order) and the medians are reported,
-- since one run on a noisy machine can be off by 20%. Writes OUT_DIR/results.json and report.html.
local monge = require "monge"
local bench = require "monge.bench"

-- The worker: one training run; rank 0 writes its timing to RESULT.
if arg[1] == "--worker" then
  local result, iters, batch = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local function train_run(n, dir)
    return monge.train(bench.quickstart_config(8192, {
      iters = n, batch = batch, seed = 0, out = dir, progress = false, device = "cpu" }))
  end
  train_run(1, result .. ".warmup")
  local run = train_run(iters, result .. ".run")
  if monge.rank() == 0 then
    local f = assert(io.open(result, "w"))
    f:write(string.format("%.6f\n", run.its_per_second))
    f:close()
    os.execute("rm -rf '" .. result .. ".warmup' '" .. result .. ".run'")
  end
  return
end

local out = arg[1] or "runs/bench-train-parallel"
local iters = tonumber(arg[2] or "60")
local procs = tonumber(arg[3] or tostring(monge.threads()))
local batch = tonumber(arg[4] or "64")
local rounds = tonumber(arg[5] or "3")
assert(procs and procs >= 2, "PROCESSES must be at least 2")
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
local exe, script = bench.executable(), arg[0]

local function measure(label, processes, threads, per_process_batch)
  local result = string.format("%s/its-%dx%d-%d", out, processes, threads, per_process_batch)
  local text, ok = bench.sh(string.format("'%s' -q --threads %d run --nproc %d '%s' --worker '%s' %d %d",
    exe, threads, processes, script, result, iters, per_process_batch))
  local f = io.open(result)
  assert(ok and f, label .. " failed:\n" .. text)
  local its = tonumber(f:read("*l"))
  f:close()
  os.remove(result)
  print(string.format("  %-40s %6.2f it/s  %7.1f samples/s", label, its, its * processes * per_process_batch))
  return its
end

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

print(string.format("train_parallel: %d iterations per setting, quickstart networks, batch %d per process, %d rounds",
  iters, batch, rounds))
local rows = {
  { label = string.format("1 process x 1 thread, batch %d", batch), processes = 1, threads = 1, batch = batch },
  { label = string.format("%d processes x 1 thread, batch %d each", procs, batch), processes = procs, threads = 1, batch = batch },
  { label = string.format("1 process x %d threads, batch %d", procs, procs * batch), processes = 1, threads = procs, batch = procs * batch },
}
for _, r in ipairs(rows) do r.runs = {} end
for round = 1, rounds do
  print(string.format("round %d of %d", round, rounds))
  for k = 0, #rows - 1 do
    local r = rows[(round - 1 + k) % #rows + 1]
    r.runs[#r.runs + 1] = measure(r.label, r.processes, r.threads, r.batch)
  end
end
for _, r in ipairs(rows) do
  r.global_batch = r.processes * r.batch
  r.its_per_s = median(r.runs)
  r.samples_per_s = r.its_per_s * r.global_batch
end
print("medians:")
for _, r in ipairs(rows) do
  print(string.format("  %-40s %6.2f it/s  %7.1f samples/s", r.label, r.its_per_s, r.samples_per_s))
end
local base = rows[1].samples_per_s
for _, r in ipairs(rows) do r.speedup = r.samples_per_s / base end
print(string.format("speed-up in samples/s over 1 process x 1 thread: %.2f (%d processes), %.2f (1 process x %d threads, same updates)",
  rows[2].speedup, procs, rows[3].speedup, procs))
print(string.format("%d processes vs 1 process x %d threads with the same global batch: x%.2f", procs, procs,
  rows[2].samples_per_s / rows[3].samples_per_s))

local cpu, rev = bench.machine(), bench.git_revision()
local parts, trs = {}, {}
for _, r in ipairs(rows) do
  local runs = {}
  for i, v in ipairs(r.runs) do runs[i] = bench.fixed(v, 4) end
  parts[#parts + 1] = {
    setting = r.label, processes = r.processes, threads = r.threads, batch = r.batch, global_batch = r.global_batch,
    its_per_s = bench.fixed(r.its_per_s, 4), its_per_s_runs = runs, samples_per_s = bench.fixed(r.samples_per_s, 2),
    speedup = bench.fixed(r.speedup, 3),
  }
  trs[#trs + 1] = string.format("<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.1f</td><td>%.2f</td></tr>",
    r.label, r.global_batch, r.its_per_s, r.samples_per_s, r.speedup)
end
bench.write_json(out .. "/results.json", {
  benchmark = "train_parallel", machine = { cpu = cpu, cores = monge.threads() }, git_revision = rev,
  iterations = iters, rounds = rounds, settings = parts,
})
local html = assert(io.open(out .. "/report.html", "w"))
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge data-parallel training benchmark</title>
<body style="font-family: sans-serif; max-width: 900px"><h1>Data-parallel training</h1>
<p>The quickstart's UOTIP step (unet 16, potential 16, Fashion-MNIST Gaussian deblurring), %d iterations per
setting, medians of %d rounds; %s, %d cores; git %s.</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>setting</th><th>global batch</th><th>it/s</th><th>samples/s</th><th>speed-up</th></tr>
%s</table></body>
]], iters, rounds, cpu, monge.threads(), rev, table.concat(trs, "\n")))
html:close()
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
