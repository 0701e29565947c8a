-- The supervised solver trains on pairs: on Fashion-MNIST deblurring it beats the degraded input
-- within a few hundred steps, which regression on unpaired (independent) x and y cannot do; and
-- it resumes exactly.
local monge = require "monge"
local out = (arg[1] or ".") .. "/supervised_test"
os.execute("rm -rf '" .. out .. "'")
monge.set_threads(1)

local fm = monge.data.fashion_mnist { split = "train", limit = 1024 }
local eval = monge.data.fashion_mnist { split = "test", limit = 200 }.images
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })

local function config(dir, iters, extra)
  local c = {
    operator = A, noise = noise, clean = fm.images, measured = fm.images:narrow(1, 1, 8), eval = eval,
    map = monge.network("unet", { channels = 8, depth = 1 }),
    potential = monge.network("potential", { channels = 4, depth = 1 }),
    solver = monge.solver("supervised", { lr = 2e-3, ema = 0.9 }),
    cost = monge.cost("quadratic", { operator = A }),
    iters = iters, batch = 32, seed = 1, out = dir, progress = false, log_every = 1,
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local run = monge.train(config(out .. "/run", 150))
local e = run.evals[#run.evals]
print(string.format("supervised, 150 steps: degraded %.2f dB, restored %.2f dB", e.psnr_degraded, e.psnr))
assert(e.psnr > e.psnr_degraded + 1.0, "supervised training should beat the degraded input by 1 dB")

-- Resume: 4 + 4 steps equal 8 straight steps.
local straight = monge.train(config(out .. "/straight", 8, { eval = nil }))
monge.train(config(out .. "/resumed", 4, { eval = nil }))
local resumed = monge.train(config(out .. "/resumed", 8, { eval = nil, resume = true }))
assert(resumed.iterations == 4, resumed.iterations)
local x = eval:narrow(1, 1, 16)
local d = (straight.map:forward(x) - resumed.map:forward(x)):abs():max():item()
assert(d < 1e-6, "resumed run differs by " .. d)
print("ok")
