-- The one-to-many toy shared by not_test.lua and otp_test.lua (not a test itself): a tight
-- Gaussian at the origin, N(0, 0.02^2 I), to two Gaussians (std 0.1) at (-1, 0) and (1, 0),
-- as 2-channel 1 x 1 images. No deterministic map can split the source.
--   local toy = dofile("one_to_many.lua")
--   local run = toy.learn(out .. "/name", solver, iters[, extra options for monge.train])
--   toy.energy(t)   squared energy distance of points t [2000, 2] to 2000 target points
local monge = require "monge"
local M = {}

function M.source(n, seed) return (monge.randn({ n, 2 }, { seed = seed }) * 0.02):reshape { n, 2, 1, 1 } end
function M.target(n, seed)
  local side = monge.rand({ n, 1 }, { seed = seed + 100 }):gt(0.5):float() * 2 - 1
  return (monge.randn({ n, 2 }, { seed = seed }) * 0.1 + monge.cat({ side, side * 0 }, 2)):reshape { n, 2, 1, 1 }
end

local identity = monge.operator("identity")
-- Trains `solver` on 8192 source and 8192 target points with MLPs 2 x 128, batch 128, seed 0.
function M.learn(out, solver, iters, extra)
  local options = {
    operator = identity, clean = M.target(8192, 1), measured = M.source(8192, 2),
    map = monge.network("mlp", { hidden = 128, layers = 2 }),
    potential = monge.network("mlp", { hidden = 128, layers = 2, output = "scalar" }),
    solver = solver, cost = monge.cost("quadratic", { operator = identity }),
    iters = iters, batch = 128, seed = 0, out = out, progress = false, log_every = 100,
  }
  for k, v in pairs(extra or {}) do options[k] = v end
  return monge.train(options)
end

-- Mean pairwise distance between two point clouds [n, 2].
local function mean_distance(a, b)
  local sq = a:pow(2):sum(2):reshape { -1, 1 } + b:pow(2):sum(2):reshape { 1, -1 } - a:matmul(b:transpose(1, 2)) * 2
  return sq:clamp(0, nil):sqrt():mean():item()
end
M.reference = M.target(2000, 4):reshape { 2000, 2 }
function M.energy(t)
  return 2 * mean_distance(t, M.reference) - mean_distance(t, t) - mean_distance(M.reference, M.reference)
end
-- Share of the points [n, 2] on the right (first coordinate > 0).
function M.right(t) return t:narrow(2, 1, 1):gt(0):float():mean():item() end

return M
