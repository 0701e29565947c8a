-- Training speed of the quickstart's networks (unet 16 / potential 16, batch 64, GB task) on 1 and
-- on N threads, measured in one run so the ratio is not skewed by a noisy machine.
--
--   monge run scripts/bench/train_speed.lua [ITERS=60] [MAX_THREADS=all cores] [DEVICE=auto]
--
-- Prints it/s per thread count and the speed-up over 1 thread; no evaluation, no checkpoints
-- beyond the trainer's own start/end ones (in a temporary directory).
local monge = require "monge"
local iters = tonumber(arg[1] or "60")
local max_threads = tonumber(arg[2] or tostring(monge.threads()))
local device = arg[3] or "auto"
local out = os.tmpname()
os.remove(out)

local bench = require "monge.bench"

local function speed(threads)
  monge.set_threads(threads)
  local run = monge.train(bench.quickstart_config(8192, {
    iters = iters, batch = 64, seed = 0, out = out .. "-" .. threads, progress = false, device = device }))
  os.execute("rm -rf '" .. out .. "-" .. threads .. "'")
  return run.its_per_second
end

local counts = { 1 }
if max_threads > 1 then counts[#counts + 1] = max_threads end
local base
print(string.format("train_speed: %d iterations per setting, batch 64, device %s", iters, device))
for _, n in ipairs(counts) do
  local s = speed(n)
  base = base or s
  print(string.format("  %2d thread(s): %6.2f it/s  (x%.2f vs 1 thread)", n, s, s / base))
end
