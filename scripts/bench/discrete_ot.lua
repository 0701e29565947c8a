-- Speed of the discrete OT references: exact OT (network simplex) and unbalanced Sinkhorn.
--
--   monge bench discrete-ot [SIZES] [THREADS]      e.g. monge bench discrete-ot 1000,2000 1
--
-- Random 2-D Gaussian clouds (the target shifted by 1), squared Euclidean cost. Prints seconds
-- and pivots of exact OT per size, then unbalanced Sinkhorn (eps 0.05, rho 1) on the first size:
-- seconds per iteration over 200 iterations, and the time to converge to tol 1e-9.
local monge = require "monge"
local sizes = {}
for s in (arg[1] or "1000,2000"):gmatch("[^,]+") do sizes[#sizes + 1] = assert(tonumber(s), "discrete-ot: bad size " .. s) end
monge.set_threads(tonumber(arg[2] or 1))
local function clouds(n, seed)
  return monge.randn({ n, 2 }, { seed = seed, dtype = "float64" }), monge.randn({ n, 2 }, { seed = seed + 1, dtype = "float64" }) + 1
end
for _, n in ipairs(sizes) do
  local x, y = clouds(n, 21)
  local C = monge.ot.cost_matrix(x, y)
  local t0 = monge.clock()
  local r = monge.ot.exact(C)
  print(string.format("discrete-ot: exact %dx%d: %.3f s, %d pivots, cost %.6f", n, n, monge.clock() - t0, r.pivots, r.cost))
end
local x, y = clouds(sizes[1], 31)
local C = monge.ot.cost_matrix(x, y)
local t0 = monge.clock()
local u = monge.ot.unbalanced(C, { eps = 0.05, rho = 1, max_iter = 200, tol = 0 })
local per = (monge.clock() - t0) / u.iterations
t0 = monge.clock()
local v = monge.ot.unbalanced(C, { eps = 0.05, rho = 1, max_iter = 100000, tol = 1e-9 })
print(string.format("discrete-ot: unbalanced %dx%d (eps 0.05, rho 1): %.1f ms per iteration; converged to 1e-9 in %d iterations, %.2f s, mass %.4f",
                    sizes[1], sizes[1], 1000 * per, v.iterations, monge.clock() - t0, v.mass))
