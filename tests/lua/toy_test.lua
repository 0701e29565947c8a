-- Known answer: balanced OT with the quadratic cost between two Gaussians in 2-D, learned by OTIP
-- (uotip with Psi1* = Psi2* = identity) and by NOT with the strong cost (a deterministic map). The
-- optimal map is affine and closed-form,
--   T*(y) = m2 + A (y - m1),  A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2,
-- and the learned map must come close to it.
local monge = require "monge"
local out = (arg[1] or ".") .. "/toy_test"
os.execute("rm -rf '" .. out .. "'")
monge.set_threads(1)  -- tiny tensors: threads only add overhead

-- 2x2 matrices as {{a, b}, {c, d}}.
local function mul(p, q)
  return { { p[1][1] * q[1][1] + p[1][2] * q[2][1], p[1][1] * q[1][2] + p[1][2] * q[2][2] },
           { p[2][1] * q[1][1] + p[2][2] * q[2][1], p[2][1] * q[1][2] + p[2][2] * q[2][2] } }
end
local function transpose(p) return { { p[1][1], p[2][1] }, { p[1][2], p[2][2] } } end
local function inverse(p)
  local det = p[1][1] * p[2][2] - p[1][2] * p[2][1]
  return { { p[2][2] / det, -p[1][2] / det }, { -p[2][1] / det, p[1][1] / det } }
end
-- Square root of a symmetric positive definite 2x2 matrix: (M + s I) / sqrt(tr M + 2 s), s = sqrt(det M).
local function sqrtm(p)
  local s = math.sqrt(p[1][1] * p[2][2] - p[1][2] * p[2][1])
  local t = math.sqrt(p[1][1] + p[2][2] + 2 * s)
  return { { (p[1][1] + s) / t, p[1][2] / t }, { p[2][1] / t, (p[2][2] + s) / t } }
end

local m1, L1 = { 0.4, -0.3 }, { { 0.5, 0 }, { 0.2, 0.3 } }
local m2, L2 = { -0.2, 0.3 }, { { 0.25, 0 }, { -0.2, 0.45 } }
local S1, S2 = mul(L1, transpose(L1)), mul(L2, transpose(L2))
local r1 = sqrtm(S1)
local r1i = inverse(r1)
local A = mul(mul(r1i, sqrtm(mul(mul(r1, S2), r1))), r1i)
-- Check the closed form: A S1 A^T = S2 (A pushes N(m1, S1) to N(m2, S2)).
local pushed = mul(mul(A, S1), transpose(A))
for i = 1, 2 do for j = 1, 2 do assert(math.abs(pushed[i][j] - S2[i][j]) < 1e-12) end end

-- n samples of N(m, L L^T) as N x 2 x 1 x 1.
local function gaussian(n, m, L, seed)
  local z = monge.randn({ n, 2 }, { seed = seed }):double()
  return (z:matmul(monge.tensor(transpose(L)):double()) + monge.tensor({ m }):double()):reshape { n, 2, 1, 1 }
end
local function affine(y, M, a, b)  -- b + M (y - a), row-wise
  local n = y:size(1)
  local flat = y:reshape { n, 2 } - monge.tensor({ a }):double()
  return (flat:matmul(monge.tensor(transpose(M)):double()) + monge.tensor({ b }):double()):reshape { n, 2, 1, 1 }
end

local identity = monge.operator("identity")
local function learn(name, solver, iters)
  return monge.train {
    operator = identity,
    clean = gaussian(8192, m2, L2, 1):float(),     -- X ~ N(m2, S2)
    measured = gaussian(8192, m1, L1, 2):float(),  -- Y ~ N(m1, S1) (no noise model: y = A(signal))
    map = monge.network("mlp", { hidden = 64, layers = 2 }),
    potential = monge.network("mlp", { hidden = 64, layers = 2, output = "scalar" }),
    solver = solver,
    cost = monge.cost("quadratic", { operator = identity }),
    iters = iters, batch = 256, seed = 0, out = out .. "/" .. name, progress = false, log_every = 100,
  }
end

-- Relative RMS error of a map against T*, on fresh samples.
local y = gaussian(4096, m1, L1, 3)
local best = affine(y, A, m1, m2)
local spread = (best - monge.tensor({ m2 }):double():reshape { 1, 2, 1, 1 }):pow(2):sum(2):mean():sqrt():item()
local function error_of(t) return (t - best):pow(2):sum(2):mean():sqrt():item() / spread end
local untrained = error_of(y)  -- the identity map the networks start from
assert(untrained > 1, untrained)

local cases = {
  { "otip", monge.solver("uotip", { psi1 = "identity", psi2 = "identity", tau = 1, r1 = 0,
                                    lr_map = 1e-3, lr_potential = 1e-3, ema = 0.99 }), 600 },
  -- NOT's strong cost: no latent noise, one map update per potential update at this budget.
  { "not", monge.solver("not", { latent = 0, gamma = 0, k_t = 1, tau = 1, lr_map = 1e-3, lr_potential = 1e-3,
                                 beta1 = 0.5, beta2 = 0.9, ema = 0.99 }), 600 },
}
for _, case in ipairs(cases) do
  local name, solver, iters = case[1], case[2], case[3]
  local run = learn(name, solver, iters)
  local learned = error_of(run.map:forward(y:float()):double())
  print(string.format("toy_test: %s: relative RMS error %.4f (identity map: %.4f) after %d iterations in %.1f s",
                      name, learned, untrained, run.iterations, run.seconds))
  assert(learned < 0.1, name .. ": the learned map is not the closed-form OT map: relative error " .. learned)
end
print("toy_test: ok")
