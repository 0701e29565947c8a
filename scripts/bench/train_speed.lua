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

local train = monge.data.fashion_mnist { split = "train", limit = 8192 }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local cost = monge.cost("likelihood", { operator = A, noise = noise }) + 1.1 * monge.cost("quadratic", { operator = A })

local function speed(threads)
  monge.set_threads(threads)
  local run = monge.train {
    operator = A, noise = noise, clean = clean, measured = measured,
    map = monge.network("unet", { channels = 16, depth = 2 }),
    potential = monge.network("potential", { channels = 16, depth = 3 }),
    solver = monge.solver("uotip", { tau = 0.1 }), cost = cost,
    iters = iters, batch = 64, seed = 0, out = out .. "-" .. threads, progress = false, device = device,
  }
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
