-- A small training run for the data-parallel tests: Fashion-MNIST deblurring with tiny networks.
--   monge run [--nproc N] train_small.lua OUT ITERS BATCH [DIST_TIMEOUT] [resume]
-- Checkpoints every 10 iterations, logs every iteration.
local monge = require "monge"
local out, iters, batch = arg[1], tonumber(arg[2]), tonumber(arg[3])
local timeout = tonumber(arg[4] or "60")
local resume = arg[5] == "resume"
assert(out and iters and batch, "usage: train_small.lua OUT ITERS BATCH [DIST_TIMEOUT] [resume]")

local train = monge.data.fashion_mnist { split = "train", limit = 512 }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local A = monge.operator("gaussian_blur", { size = 7, sigma = 1.0, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local run = monge.train {
  operator = A, noise = noise, clean = clean, measured = measured,
  map = monge.network("unet", { channels = 8, depth = 1 }),
  potential = monge.network("potential", { channels = 8, depth = 2 }),
  solver = monge.solver("uotip", { tau = 0.1, lr_map = 1e-3, lr_potential = 5e-4 }),
  cost = monge.cost("quadratic", { operator = A }),
  iters = iters, batch = batch, seed = 3, log_every = 1, checkpoint_every = 10,
  out = out, progress = false, resume = resume, dist_timeout = timeout,
}
print(string.format("rank %d of %d: trained %d iterations", monge.rank(), monge.world_size(), run.iterations))
