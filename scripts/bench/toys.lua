-- The 2-D toy suite: neural OT solvers on problems whose answer discrete OT knows.
--
--   monge bench toys [--config tiny|short] [--out DIR] [--toys LIST] [--solvers LIST] [--seed S] [--iters N]
--
-- Toys (source -> target, 2-D points stored as N x 2 x 1 x 1):
--   eight_gaussians  N(0, 0.5^2 I) -> 8 Gaussians on a circle of radius 2
--   swiss_roll       N(0, 0.5^2 I) -> a 2-D Swiss roll
--   moons            N(0, 0.5^2 I) -> two interleaved half circles
--   one_to_many      N(0, 0.02^2 I), nearly a point -> two Gaussians at (-1, 0) and (1, 0): no
--                    deterministic map can split it; a stochastic map T(y, z) must
--   unbalanced       two Gaussians of equal mass at (-1.5, 0), (1.5, 0) -> the same modes moved up
--                    by 1 and reweighted 80/20: balanced OT must carry 30% of the mass across;
--                    unbalanced OT rescales the modes' mass instead
-- Solvers (same MLPs 2 x 128, batch, iterations and Adam 1e-3 for all):
--   otip   uotip with identity conjugates (balanced semi-dual OT)
--   uotip  uotip with KL conjugates (unbalanced)
--   not    NOT, strong quadratic cost (gamma 0), stochastic map with 2 latent channels
--   knot   kernel NOT, distance kernel, gamma 1 from the first step (its default: no ramp)
--   otp    otip on a smoothed source (noise 1 annealed to 0.1, kept at apply): a stochastic plan
--   gan_reg  regularised GAN (WGAN-GP critic, gp 10, 5 critic updates per map update: one let the
--          critic lag and the map overshoot) with the mse fidelity, lambda 1, against a
--          reference map renewed every tenth of the run (reference_every = iters / 10): each round
--          may move a point by about 1 / lambda = 1 (the Gaussian test's closed form), so ten
--          rounds cover the toys' distances (about 2) with time left to settle, and the last
--          rounds' fidelity keeps the map close to its predecessor, i.e. close to an OT map
-- For each pair: the transport cost E|T(y) - y|^2 on held-out source samples against the exact
-- discrete OT cost between those samples and as many target samples (monge.ot.exact), the
-- marginal fit as the energy distance of T(y) to the target relative to that of the source, and a
-- scatter plot with displacement arrows. A toy counts as solved when the fit is below 5% of the
-- source's and the cost within 25% of discrete OT. On the unbalanced toy the suite also reports
-- the share of the right-hand source mode carried to the left, against exact OT's (about 60%) and the
-- unbalanced Sinkhorn plan's (eps 0.05, rho 1), and each map's fit to the target as that plan
-- rescales it (the target UOT maps aim at). Writes DIR/results.json and DIR/report.html.
local monge = require "monge"
local bench = require "monge.bench"
local report = require "monge.report"

local all_toys = { "eight_gaussians", "swiss_roll", "moons", "one_to_many", "unbalanced" }
local all_solvers = { "otip", "uotip", "not", "knot", "otp", "gan_reg" }
local opts = bench.options("toys", arg, { "config", "out", "toys", "solvers", "seed", "iters" },
                           { config = "short", toys = table.concat(all_toys, ","), solvers = table.concat(all_solvers, ","),
                             seed = "0", iters = "0" })
local configs = {
  tiny = { iters = 30, batch = 64, test = 200, k_t = 5 },     -- seconds: for ctest, not a measurement
  short = { iters = 15000, batch = 128, test = 1000, k_t = 5 }, -- about 15 minutes on 2 cores
}
local cfg = assert(configs[opts.config], "toys: --config must be tiny or short, got '" .. opts.config .. "'")
if tonumber(opts.iters) and tonumber(opts.iters) > 0 then cfg.iters = math.floor(tonumber(opts.iters)) end
local function pick(list, known, what)
  local out = {}
  for name in list:gmatch("[^,]+") do
    local ok = false
    for _, k in ipairs(known) do ok = ok or k == name end
    assert(ok, "toys: unknown " .. what .. " '" .. name .. "' (known: " .. table.concat(known, ", ") .. ")")
    out[#out + 1] = name
  end
  return out
end
local toys, solvers = pick(opts.toys, all_toys, "toy"), pick(opts.solvers, all_solvers, "solver")
local seed = assert(tonumber(opts.seed), "toys: --seed must be a number")
local out = opts.out or ("toys-" .. opts.config)
os.execute("mkdir -p '" .. out .. "/runs'")
monge.set_threads(1)  -- 2-D points: threads only add overhead

-- Samplers: n points [n, 2], float32, from seeded generators.
local function normal(n, s) return monge.randn({ n, 2 }, { seed = s }) end
local function uniform(n, s) return monge.rand({ n, 1 }, { seed = s }) end
local function at(points) return monge.tensor(points) end
local function mixture(n, s, centres, std, weights)
  -- Mode of each point from the cumulative weights, then Gaussian noise around its centre.
  local u = uniform(n, s + 7)
  local idx = monge.zeros({ n, 1 }, { dtype = "int64" })
  local acc = 0
  for k = 1, #centres - 1 do
    acc = acc + (weights and weights[k] or 1 / #centres)
    idx = idx + u:gt(acc):long()
  end
  return at(centres):index_select(1, idx:reshape { n }) + normal(n, s) * std
end
local function circle_centres(k, r)
  local c = {}
  for j = 0, k - 1 do c[#c + 1] = { r * math.cos(2 * math.pi * j / k), r * math.sin(2 * math.pi * j / k) } end
  return c
end
local problems = {
  eight_gaussians = { source = function(n, s) return normal(n, s) * 0.5 end,
                      target = function(n, s) return mixture(n, s, circle_centres(8, 2), 0.1) end },
  swiss_roll = {
    source = function(n, s) return normal(n, s) * 0.5 end,
    target = function(n, s)
      local t = (uniform(n, s) * 2 + 1) * (1.5 * math.pi)
      return monge.cat({ t * t:cos(), t * t:sin() }, 2) / 7 + normal(n, s + 1) * 0.05
    end },
  moons = {
    source = function(n, s) return normal(n, s) * 0.5 end,
    target = function(n, s)
      local t, upper = uniform(n, s) * math.pi, uniform(n, s + 1):gt(0.5):float()
      local x = upper * t:cos() + (1 - upper) * (1 - t:cos())
      local y = upper * t:sin() + (1 - upper) * (0.5 - t:sin())
      return (monge.cat({ x - 0.5, y - 0.25 }, 2) + normal(n, s + 2) * 0.05) * 1.5
    end },
  one_to_many = { source = function(n, s) return normal(n, s) * 0.02 end,
                  target = function(n, s) return mixture(n, s, { { -1, 0 }, { 1, 0 } }, 0.1) end },
  unbalanced = { source = function(n, s) return mixture(n, s, { { -1.5, 0 }, { 1.5, 0 } }, 0.2) end,
                 target = function(n, s) return mixture(n, s, { { -1.5, 1 }, { 1.5, 1 } }, 0.2, { 0.8, 0.2 }) end },
}
local function as_images(p) return p:reshape { p:size(1), 2, 1, 1 } end

-- One recipe for every solver: the same networks, batch, iterations and rates.
local function make_solver(name)
  local common = { lr_map = 1e-3, lr_potential = 1e-3, lr_schedule = "cosine" }
  local function with(extra)
    local o = {}
    for k, v in pairs(common) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end
  if name == "otip" then return monge.solver("uotip", with { psi1 = "identity", psi2 = "identity", tau = 0.5, r1 = 0, ema = 0 }) end
  if name == "uotip" then return monge.solver("uotip", with { psi1 = "kl", psi2 = "kl", tau = 0.5, r1 = 0, ema = 0 }) end
  if name == "not" then return monge.solver("not", with { gamma = 0, latent = 2, k_t = cfg.k_t, tau = 0.5, r1 = 0.5 }) end
  if name == "otp" then
    return monge.solver("otp", with { tau = 0.5, r1 = 0, ema = 0, smoothing = 1, smoothing_min = 0.1 })
  end
  if name == "gan_reg" then
    return monge.solver("gan_reg", with { fidelity = "mse", lambda = 1, reference_every = math.max(1, math.floor(cfg.iters / 10)) })
  end
  return monge.solver("knot", with { gamma = 1, latent = 2, k_t = cfg.k_t, tau = 0.5, r1 = 0.5 })
end

local function rows_of(t, limit)  -- the first `limit` rows of [n, 2] as { {x, y}, ... }
  local n = math.min(t:size(1), limit)
  return t:narrow(1, 1, n):double():tolist()
end

local results = { config = opts.config, seed = seed, machine = bench.machine(), git = monge.git_revision,
                  monge = monge.version, iters = cfg.iters, batch = cfg.batch, test = cfg.test, toys = {} }
local parts = {}
local started = monge.clock()
for _, toy in ipairs(toys) do
  local problem = problems[toy]
  local ti = 0  -- the toy's place in the full list: its data do not depend on which toys run
  for k, name in ipairs(all_toys) do if name == toy then ti = k end end
  local src_test, tgt_test = problem.source(cfg.test, seed + 1000 * ti + 3), problem.target(cfg.test, seed + 1000 * ti + 4)
  local exact = monge.ot.exact(monge.ot.cost_matrix(src_test, tgt_test))
  local entry = { ot_cost = exact.cost, source_fit = monge.ot.energy_distance(src_test, tgt_test), solvers = {} }
  local right = src_test:narrow(2, 1, 1):gt(0):reshape { cfg.test }
  local function crossing(moved)  -- share of the right-hand source mode that ends on the left
    local moved_left = moved:narrow(2, 1, 1):lt(0):reshape { cfg.test }
    return (right:float() * moved_left:float()):sum():item() / right:float():sum():item()
  end
  if toy == "unbalanced" then
    -- Exact OT's plan: the share of the right mode's mass sent to the left half of the target.
    local left_target = tgt_test:narrow(2, 1, 1):lt(0):reshape { 1, cfg.test }:double()
    local right_source = right:double():reshape { cfg.test, 1 }
    entry.exact_crossing = (exact.plan * right_source * left_target):sum():item() / (exact.plan * right_source):sum():item()
    local u = monge.ot.unbalanced(monge.ot.cost_matrix(src_test, tgt_test), { eps = 0.05, rho = 1, max_iter = 2000 })
    entry.unbalanced_crossing = (u.plan * right_source * left_target):sum():item() / (u.plan * right_source):sum():item()
    entry.unbalanced_mass = u.mass
    entry.rescaled_weights = u.marginal_b  -- the target as unbalanced OT rescales it (not in results.json)
    entry.rescaled_source_fit = monge.ot.energy_distance(src_test, tgt_test, { b = u.marginal_b })
  end
  local rows, clouds_html = {}, {}
  for _, name in ipairs(solvers) do
    local t0 = monge.clock()
    local run = monge.train {
      operator = monge.operator("identity"),
      clean = as_images(problem.target(8192, seed + 1000 * ti + 1)),
      measured = as_images(problem.source(8192, seed + 1000 * ti + 2)),
      map = monge.network("mlp", { hidden = 128, layers = 2 }),
      potential = monge.network("mlp", { hidden = 128, layers = 2, output = "scalar" }),
      solver = make_solver(name), cost = monge.cost("quadratic", { operator = monge.operator("identity") }),
      iters = cfg.iters, batch = cfg.batch, seed = seed, out = out .. "/runs/" .. toy .. "-" .. name,
      progress = false, log_every = math.max(1, math.floor(cfg.iters / 20)),
    }
    if run.map.latent > 0 then run.map:reseed(seed) end
    -- As apply uses the map: a smoothed (otp) map adds its noise to y, a latent one draws z.
    local moved = run.map:sample(as_images(src_test)):detach():reshape { cfg.test, 2 }
    local cost = (moved - src_test):pow(2):sum(2):mean():item()
    -- fit: the energy distance to the target relative to the source's (1: no better than the input).
    local energy = monge.ot.energy_distance(moved, tgt_test)
    local r = { cost = cost, ratio = cost / exact.cost, fit = energy / entry.source_fit, energy = energy,
                seconds = monge.clock() - t0 }
    r.solved = r.fit < 0.05 and r.ratio < 1.25
    if toy == "unbalanced" then
      r.crossing = crossing(moved)
      -- Fit to the target reweighted as the unbalanced plan has it (what UOT maps aim at).
      local w = { b = entry.rescaled_weights }
      r.fit_rescaled = monge.ot.energy_distance(moved, tgt_test, w) / entry.rescaled_source_fit
    end
    entry.solvers[name] = r
    rows[#rows + 1] = { name, r.cost, exact.cost, r.ratio, r.fit, r.solved and "yes" or "no", r.crossing or "", r.fit_rescaled or "", r.seconds }
    print(string.format("toys: %-15s %-6s cost %.4f (discrete OT %.4f, ratio %.3f), fit %.4f%s%s",
                        toy, name, cost, exact.cost, r.ratio, r.fit,
                        r.crossing and string.format(", crossing %.3f, fit to the rescaled target %.4f", r.crossing, r.fit_rescaled) or "",
                        r.solved and ", solved" or ""))
    io.stdout:flush()
    local arrows = {}
    for _, pair in ipairs(monge.cat({ src_test:narrow(1, 1, 60), moved:narrow(1, 1, 60) }, 2):double():tolist()) do
      arrows[#arrows + 1] = { { pair[1], pair[2] }, { pair[3], pair[4] } }
    end
    clouds_html[#clouds_html + 1] = report.scatter_plot {
      title = name .. string.format(" (ratio %.2f, fit %.3f)", r.ratio, r.fit), size = 300,
      clouds = { { name = "source", points = rows_of(src_test, 400), color = "#bbbbbb" },
                 { name = "target", points = rows_of(tgt_test, 400), color = "#6baed6" },
                 { name = "T(y)", points = rows_of(moved, 400), color = "#d62728" } },
      arrows = arrows }
  end
  entry.rescaled_weights, entry.rescaled_source_fit = nil, nil
  results.toys[toy] = entry
  parts[#parts + 1] = "<h2>" .. report.escape(toy) .. "</h2>"
  if toy == "unbalanced" then
    parts[#parts + 1] = string.format("<p>Share of the right-hand source mode carried to the left: exact (balanced) OT %.3f, " ..
      "unbalanced Sinkhorn (eps 0.05, rho 1) %.3f with mass %.3f.</p>", entry.exact_crossing, entry.unbalanced_crossing, entry.unbalanced_mass)
  end
  parts[#parts + 1] = report.table({ "solver", "cost E|T(y) - y|^2", "discrete OT", "ratio", "fit (energy, rel.)", "solved",
                                     "crossing", "fit (rescaled target)", "seconds" }, rows,
                                   { "%s", "%.4f", "%.4f", "%.3f", "%.4f", "%s", "%.3f", "%.4f", "%.1f" })
  parts[#parts + 1] = '<div style="display: flex; flex-wrap: wrap; gap: 8px">' .. table.concat(clouds_html, "\n") .. "</div>"
end
results.seconds = monge.clock() - started

-- Summary: which solver solves which toy.
local summary = {}
for _, name in ipairs(solvers) do
  local row = { name }
  for _, toy in ipairs(toys) do
    local r = results.toys[toy].solvers[name]
    row[#row + 1] = string.format("%s (%.2f)", r.solved and "yes" or "no", r.ratio)
  end
  summary[#summary + 1] = row
end
local headers = { "solver" }
for _, toy in ipairs(toys) do headers[#headers + 1] = toy end
table.insert(parts, 1, "<p>Solved: fit below 5% of the source's energy distance and cost within 25% of discrete OT; " ..
  "in brackets the cost ratio to discrete OT. Config " .. report.escape(opts.config) .. ", " .. cfg.iters ..
  " iterations, batch " .. cfg.batch .. ", " .. cfg.test .. " test points, monge " .. monge.version .. " (" ..
  report.escape(results.git) .. ").</p>" .. report.table(headers, summary))
report.write_json(out .. "/results.json", results)
report.page(out .. "/report.html", "Toy suite: neural OT solvers against discrete OT", parts)
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
