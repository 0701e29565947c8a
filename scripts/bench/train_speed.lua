-- Training speed of the quickstart's networks (unet 16 / potential 16, batch 64, GB task) on 1 and
-- on N threads, in each setting asked for, measured in one run so the ratios are not skewed by a
-- noisy machine.
--
--   monge run scripts/bench/train_speed.lua [ITERS=60] [MAX_THREADS=all cores] [DEVICE=auto]
--                                           [SETTINGS=fp32]
--
-- SETTINGS: a comma-separated list of fp32, bf16 (monge.train's precision = "bf16": the solver
-- steps under bf16 autocast; left out where this CPU cannot train in bf16) and fp32-uncached (fp32
-- with the CPU tensor cache off, as monge trained before it). Prints it/s per thread count and
-- setting, the speed-up over 1 thread and over the first setting; no evaluation, no checkpoints
-- beyond the trainer's own start/end ones (in a temporary directory).
local monge = require "monge"
local iters = tonumber(arg[1] or "60")
local max_threads = tonumber(arg[2] or tostring(monge.threads()))
local device = arg[3] or "auto"
local out = os.tmpname()
os.remove(out)

local bench = require "monge.bench"

local settings = {}
for s in (arg[4] or "fp32"):gmatch("[^,]+") do
  assert(s == "fp32" or s == "bf16" or s == "fp32-uncached", "SETTINGS: fp32, bf16 and/or fp32-uncached, got '" .. s .. "'")
  if s == "bf16" and device ~= "cuda" and not monge.cpu_bf16() then
    print("train_speed: bf16 left out: this CPU (or its DNNL_MAX_CPU_ISA limit) cannot train in bf16")
  else
    settings[#settings + 1] = s
  end
end

local function speed(threads, setting)
  monge.set_threads(threads)
  return bench.with_setting(setting, function(precision)
    local dir = out .. "-" .. threads .. "-" .. setting
    local run = monge.train(bench.quickstart_config(8192, {
      iters = iters, batch = 64, seed = 0, out = dir, progress = false, device = device, precision = precision }))
    os.execute("rm -rf '" .. dir .. "'")
    return run.its_per_second
  end)
end

local counts = { 1 }
if max_threads > 1 then counts[#counts + 1] = max_threads end
print(string.format("train_speed: %d iterations per setting, batch 64, device %s", iters, device))
local base, first = {}, {}
for _, n in ipairs(counts) do
  for _, setting in ipairs(settings) do
    local s = speed(n, setting)
    base[setting] = base[setting] or s
    first[n] = first[n] or s
    print(string.format("  %2d thread(s) %-13s %6.2f it/s  (x%.2f vs 1 thread, x%.2f vs %s)", n, setting, s, s / base[setting],
      s / first[n], settings[1]))
  end
end
