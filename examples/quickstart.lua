-- Quickstart: train UOTIP on Fashion-MNIST Gaussian deblurring (the GB task of BENCHMARKS.md),
-- then restore held-out test images and compare PSNR with the degraded input.
--
--   monge run examples/quickstart.lua [OUT_DIR] [ITERS] [reuse]
--
-- OUT_DIR (default runs/quickstart) receives log.jsonl, checkpoint.pt, map.pt and grid.png.
-- With "reuse" as third argument an existing OUT_DIR/map.pt is loaded instead of training again.
local monge = require "monge"

local out = arg[1] or "runs/quickstart"
local iters = tonumber(arg[2] or "3000")
local reuse = arg[3] == "reuse"
os.execute("mkdir -p '" .. out .. "'")

-- Unpaired by construction: clean images X have even indices, the signals behind the
-- measurements Y odd ones. Evaluation: the first 1,000 test images, degraded once with seed 0.
local train = monge.data.fashion_mnist { split = "train" }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local test = monge.data.fashion_mnist { split = "test", limit = 1000 }.images

local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })

-- c(y, x) = ||A(x) - y||^2 + ||Q(y) - x||^2, summed over pixels; the solver weights it by tau.
local cost = monge.cost("likelihood", { operator = A, noise = noise }) + monge.cost("quadratic", { operator = A })

local map
local existing = io.open(out .. "/map.pt")
if reuse and existing then
  existing:close()
  map = monge.load_map(out .. "/map.pt")
  print("reusing " .. out .. "/map.pt")
else
  if existing then existing:close() end
  local run = monge.train {
    operator = A, noise = noise, clean = clean, measured = measured, eval = test,
    map = monge.network("unet", { channels = 16, depth = 2 }),
    potential = monge.network("potential", { channels = 16, depth = 3 }),
    solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", r1 = 0.2 }),
    cost = cost, iters = iters, batch = 64, seed = 0,
    eval_every = math.max(1, math.floor(iters / 10)), checkpoint_every = 500, out = out,
  }
  print(string.format("trained %d iterations in %.0f s (%.2f it/s)", run.iterations, run.seconds, run.its_per_second))
  print("iteration   PSNR degraded   PSNR restored")
  for _, e in ipairs(run.evals) do print(string.format("%9d   %13.2f   %13.2f", e.iter, e.psnr_degraded, e.psnr)) end
  map = run.map
end

-- Restore the test images and compare.
local y = noise:sample(A(test), 0)
local degraded = A:lift(y):clamp(-1, 1)
local restored = map:restore(y)
local function psnr(a, b)
  local mse = ((a - b) / 2):pow(2):flatten(2):mean(2)
  return (mse:log() * (-10 / math.log(10))):mean():item()
end
print(string.format("PSNR on %d test images: degraded %.2f dB, restored %.2f dB (%+.2f dB)", test:size(1),
                    psnr(degraded, test), psnr(restored, test), psnr(restored, test) - psnr(degraded, test)))

-- Grid: rows of degraded | restored | clean for 16 images.
local n = 16
local rows = { degraded:narrow(1, 1, n), restored:narrow(1, 1, n), test:narrow(1, 1, n) }
monge.image.save(monge.image.grid(monge.cat(rows, 1), { nrow = n }), out .. "/grid.png")
print("wrote " .. out .. "/grid.png (rows: degraded, restored, clean)")
