-- Discrete OT references (monge.ot): exact OT on a line is the sorted matching, Sinkhorn and the
-- marginal-fit measures run from Lua, unbalanced OT drops mass to a far target, and bad input
-- gives errors that say what to do.
local monge = require "monge"
local ot = monge.ot
monge.set_threads(1)

-- Exact OT between two 1-D samples equals the cost of matching them in sorted order.
local xs = monge.randn({ 40 }, { seed = 1 }):tolist()
local ys = (monge.rand({ 40 }, { seed = 2 }) * 3):tolist()
local C = ot.cost_matrix(xs, ys)
local r = ot.exact(C)
local sx, sy = { unpack(xs) }, { unpack(ys) }
table.sort(sx)
table.sort(sy)
local sorted = 0
for i = 1, #sx do sorted = sorted + (sx[i] - sy[i]) ^ 2 / #sx end
print(string.format("exact %.12f, sorted %.12f, %d pivots", r.cost, sorted, r.pivots))
assert(math.abs(r.cost - sorted) < 1e-9, "exact OT on a line should equal the sorted matching")
assert(r.plan:dtype() == "float64" and r.plan:size(1) == 40 and r.plan:size(2) == 40)
assert((r.plan:sum(2) - 1 / 40):abs():max():item() < 1e-12, "rows of the plan should sum to 1/n")
-- Duals: a.u + b.v equals the cost.
assert(math.abs(r.u:sum():item() / 40 + r.v:sum():item() / 40 - r.cost) < 1e-9)

-- Weights, given as tables: a split of mass.
local w = ot.exact({ { 0, 1 }, { 1, 0 } }, { 0.7, 0.3 }, { 0.4, 0.6 })
assert(math.abs(w.cost - 0.3) < 1e-12 and math.abs(w.plan[1][2]:item() - 0.3) < 1e-12)

-- Sinkhorn: close to the exact cost for small eps, marginals met.
local s = ot.sinkhorn(C, { eps = 0.05, max_iter = 5000, tol = 1e-7 })
print(string.format("sinkhorn cost %.6f after %d iterations (error %.2g)", s.cost, s.iterations, s.error))
assert(s.converged and s.error <= 1e-7)
assert(math.abs(s.cost - r.cost) < 0.02 * r.cost)
assert(s.objective >= s.cost)

-- Unbalanced: a target far away and a small rho keep little mass; a large rho keeps nearly all.
local x2 = monge.randn({ 30, 2 }, { seed = 3 })
local far = monge.randn({ 30, 2 }, { seed = 4 }) + 3
local Cf = ot.cost_matrix(x2, far)
local u = ot.unbalanced(Cf, { eps = 0.5, rho = 0.5 })
print(string.format("unbalanced mass %.3g (rho 0.5), cost %.3f", u.mass, u.cost))
assert(u.mass > 0 and u.mass < 0.1, "with a far target and a small rho most mass should be dropped")
assert(math.abs(u.marginal_a:sum():item() - u.mass) < 1e-9 and math.abs(u.marginal_b:sum():item() - u.mass) < 1e-9)
local near = ot.unbalanced(ot.cost_matrix(x2, x2), { eps = 0.1, rho_a = 100, rho_b = 100 })
assert(near.mass > 0.95 and near.mass < 1.0 + 1e-9, near.mass)
local hard = ot.unbalanced(Cf, { eps = 0.5, rho_a = math.huge, rho_b = 1 })
assert((hard.marginal_a - 1 / 30):abs():max():item() < 1e-8, "rho_a = math.huge makes the first marginal hard")

-- Marginal fit between clouds.
local e_same = ot.energy_distance(x2, x2)
local e_far = ot.energy_distance(x2, far)
assert(math.abs(e_same) < 1e-12 and e_far > 2, e_far)
local d = ot.sinkhorn_divergence(x2, far, { eps = 1 })
assert(d > 10 and math.abs(ot.sinkhorn_divergence(x2, x2, { eps = 1 })) < 1e-9, d)
-- Images [N, C, H, W] are flattened.
local imgs = monge.rand({ 6, 1, 4, 4 }, { seed = 5 })
assert(ot.cost_matrix(imgs, imgs):size(1) == 6 and ot.energy_distance(imgs, imgs + 1) > 0)

-- The example of docs/lua.md runs.
do
  local x = monge.randn({ 300, 2 }, { seed = 1 })
  local y = monge.randn({ 300, 2 }, { seed = 2 }) + 1
  local C = monge.ot.cost_matrix(x, y)                   -- |x_i - y_j|^2
  local r = monge.ot.exact(C)                            -- uniform weights 1/n, 1/m
  print(r.cost, r.plan:sum(), r.pivots)
  local s = monge.ot.sinkhorn(C, { eps = 0.1 })
  local u = monge.ot.unbalanced(C, { eps = 0.05, rho = 1 })
  print(s.cost, u.mass, monge.ot.energy_distance(x, y), monge.ot.sinkhorn_divergence(x, y, { eps = 0.1 }))
  assert(s.cost >= r.cost and u.mass < 1 and math.abs(r.plan:sum():item() - 1) < 1e-12)
end

-- Bad input: clear errors.
local function expect_error(pattern, f, ...)
  local ok, msg = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(msg:find(pattern, 1, true), msg)
  print("error as expected: " .. msg)
end
expect_error("a and b must have equal masses, got sum a = 1 and sum b = 2", ot.exact, C, nil, monge.full({ 40 }, 0.05, { dtype = "float64" }))
expect_error("a has negative weights", ot.exact, { { 0, 1 }, { 1, 0 } }, { 1.5, -0.5 }, { 0.5, 0.5 })
expect_error("b has 3 entries for 2 columns of the cost matrix", ot.exact, { { 0, 1 }, { 1, 0 } }, nil, { 0.2, 0.3, 0.5 })
expect_error("eps must be a positive number", ot.sinkhorn, C, { eps = 0 })
expect_error("eps must be a positive number", ot.unbalanced, C, { eps = -1 })
expect_error("unknown option 'epsilon'", ot.sinkhorn, C, { epsilon = 0.1 })
expect_error("did you mean 'rho'", ot.unbalanced, C, { rhp = 1 })
-- Types and ranges from the declarations (host/ot/options.cpp).
expect_error("monge.ot.sinkhorn: parameter 'max_iter' expects an integer, got number 2.5", ot.sinkhorn, C, { max_iter = 2.5 })
expect_error("monge.ot.unbalanced: parameter 'rho_b' expects a number in [0, inf], got -1", ot.unbalanced, C, { rho_b = -1 })
expect_error("monge.ot.sinkhorn_divergence: parameter 'tol' expects a number", ot.sinkhorn_divergence, x2, x2, { tol = "small" })
expect_error("monge.ot.energy_distance: unknown option 'eps'", ot.energy_distance, x2, x2, { eps = 1 })
expect_error("options must be a table, got number", ot.sinkhorn, C, 0.1)
expect_error("x and y must have the same number of features", ot.cost_matrix, x2, monge.zeros({ 3, 3 }))
expect_error("the cost matrix must be 2-D", ot.exact, monge.zeros({ 3 }))
expect_error("ot_test.lua:", ot.exact, monge.zeros({ 3 }))  -- errors carry the script's file:line
print("ok")
