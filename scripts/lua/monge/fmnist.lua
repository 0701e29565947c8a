-- The FMNIST-IP protocol shared by the Fashion-MNIST benchmarks (scripts/bench/fmnist_ip.lua and
-- fmnist_paper.lua): `local fmnist = require "monge.fmnist"`. It holds what those pipelines must
-- agree on so that their numbers compare: the configs (sizes and budgets), the tasks, the data
-- split (even training images clean, odd ones measured), the training recipe (networks, batch,
-- tau, R1, cosine decay, moving average, seed), the construction of each method's solver and cost,
-- the FID classifier, and the scoring of restored test images (PSNR, SSIM, FID, accuracy).
local monge = require "monge"
local bench = require "monge.bench"
local M = {}

--- The FMNIST-IP configs: sizes of the data, iterations, evaluation interval and networks.
M.configs = {
  -- Seconds: for ctest. Not a measurement.
  tiny = { train = 512, test = 64, iters = 12, batch = 8, eval_every = 6, map = { channels = 4, depth = 1 },
           potential = { channels = 4, depth = 2 } },
  -- About 6 minutes per trained method on 2 cores (the quickstart's budget).
  short = { train = 60000, test = 1000, iters = 1500, batch = 64, eval_every = 125, map = { channels = 16, depth = 2 },
            potential = { channels = 16, depth = 3 } },
  -- A long run: a GPU, or a night on a CPU.
  full = { train = 60000, test = 10000, iters = 8000, batch = 64, eval_every = 500, map = { channels = 16, depth = 2 },
           potential = { channels = 16, depth = 3 } },
}

--- The recipe's constants: the cost weight of every OT solver (the quickstart's tuned tau, not the
--- paper's 1e-3 scaled per value, 0.0627; see docs/benchmarks.md), R1 on clean data and the map's
--- moving average for the NOT solvers.
M.tau, M.r1, M.ema = 0.1, 0.2, 0.999
--- The UOTIP family's rates and R1 (uotip, otip, uotip-quad, uotip-lik), chosen by measurement on
--- FMNIST-IP GB short (docs/results.md, "Learning rates"): the solver's defaults (1e-4 and 5e-5,
--- R1 0.2) left the map 0.3 dB under the Wiener filter at FID 210; 2e-3 for both with R1 0.05 gave
--- 20.48 dB at FID 45 (Wiener: 19.04 dB, FID 228).
M.uotip_lr, M.uotip_r1 = 2e-3, 0.05

--- The tasks' forward operators (BENCHMARKS.md), by name.
M.tasks = {
  gb = function() return monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" }) end,
  sr = function() return monge.operator("downsample", { factor = 2 }) end,
  hdr = function() return monge.operator("hdr_clip", { scale = 2 }) end,
  nb = function() return monge.operator("nonlinear_blur", { length = 9, angle = 45, strength = 1.5 }) end,
}

--- The lift of every trained method and where the quadratic cost is anchored (docs/training.md#the-wiener-lift):
--- lift "auto" gives the operator the unpaired Wiener filter as its lift where the operator is linear and shift
--- invariant (gb, sr), and elsewhere (hdr, nb) the fitted lift: the least-squares FIR filter on the operator's own
--- lift, fitted on pairs simulated from the clean set with the known operator and noise model (no real pairs; the
--- same knowledge; docs/training.md#the-fitted-lift). "wiener" and "fitted" require that lift; "operator" keeps
--- the operator's own (identity, bicubic). anchor "lift" puts the quadratic cost's Q(y) at the lift,
--- "measurement" at the operator's own lift (the paper's).
M.lift, M.anchor = "auto", "lift"

local lift_kinds = { auto = true, wiener = true, fitted = true, operator = true }

--- The operator whose lift the trained maps start from, by `kind` (see M.lift), with `A`'s forward. Returns
--- that operator, the name of its lift ("wiener", "fitted" or "operator") and the Wiener filter of `A`
--- whatever `kind` (nil where `A` is not linear and shift invariant): the `wiener` baseline.
function M.lifted(A, noise, clean, kind, who)
  kind = kind or M.lift
  who = who or "fmnist"
  if not lift_kinds[kind] then
    error(who .. ": --lift must be auto, wiener, fitted or operator, got '" .. tostring(kind) .. "'", 2)
  end
  local ok, W = pcall(monge.wiener, { operator = A, clean = clean, noise = noise })
  if not ok then
    if kind == "wiener" then error(who .. ": --lift wiener: " .. tostring(W), 2) end
    W = nil
  end
  if kind == "operator" then return A, "operator", W end
  if W and kind ~= "fitted" then return W, "wiener", W end
  local fitted_ok, F = pcall(monge.fitted_lift, { operator = A, clean = clean, noise = noise })
  if fitted_ok then return F, "fitted", W end
  if kind == "fitted" then error(who .. ": --lift fitted: " .. tostring(F), 2) end
  return A, "operator", W
end

--- The forward operator of task `name`; `who` names the benchmark in the error for an unknown task.
function M.task(name, who)
  if not M.tasks[name] then error(who .. ": --task must be gb, sr, hdr or nb, got '" .. tostring(name) .. "'", 2) end
  return M.tasks[name]()
end

--- The cost weight lambda of the quadratic term: 1.1 times the operator's Lipschitz bound, at
--- least 1.1 (the twist condition, as the quickstart's 1.1 for GB).
function M.lambda(A) return 1.1 * math.max(1, A:lipschitz() or 1) end

--- The unpaired training sets from the first `limit` training images: `clean` (even indices),
--- `measured` (odd indices, degraded on the fly by the trainer) and the labels of each.
function M.train_sets(limit)
  local train = monge.data.fashion_mnist { split = "train", limit = limit }
  local even, odd = monge.arange(0, train.count, 2):long(), monge.arange(1, train.count, 2):long()
  return { clean = train.images:index_select(1, even), clean_labels = train.labels:index_select(1, even),
           measured = train.images:index_select(1, odd), measured_labels = train.labels:index_select(1, odd),
           count = train.count }
end

--- The trained methods and what each is (the table in docs/benchmarks.md).
M.trained = { "not", "knot", "gan_reg", "otip", "otp", "uotip", "uotip-quad", "uotip-lik", "supervised" }

--- The solver and cost of a trained method. `o`: `operator` (with the lift the map starts from), `plain` (the
--- operator with its own lift, for anchor "measurement"; default `operator`), `anchor` (default M.anchor),
--- `lik` (the likelihood cost),
--- `lambda` (weight of the quadratic term, default M.lambda(operator)), `iters` (for gan_reg's
--- reference interval) and `tau` (the OT solvers' cost weight, default M.tau). Returns solver, cost.
function M.method(name, o)
  local A, tau = o.operator, o.tau or M.tau
  local anchor = o.anchor or M.anchor
  if anchor ~= "lift" and anchor ~= "measurement" then
    error("monge.fmnist.method: anchor must be lift or measurement, got '" .. tostring(anchor) .. "'", 2)
  end
  local quad = monge.cost("quadratic", { operator = anchor == "lift" and A or (o.plain or A) })
  local lik = o.lik
  local function full() return lik + (o.lambda or M.lambda(A)) * quad end
  local function uotip(psi)
    return monge.solver("uotip", { psi1 = psi, psi2 = psi, tau = tau, r1 = M.uotip_r1, lr_schedule = "cosine",
                                   lr_map = M.uotip_lr, lr_potential = M.uotip_lr })
  end
  if name == "not" then
    -- NOT and kernel NOT with the recipe's cost weight, R1, rate, schedule and moving average.
    return monge.solver("not", { gamma = 0, latent = 0, tau = tau, r1 = M.r1, lr_schedule = "cosine", ema = M.ema }), quad
  elseif name == "knot" then
    return monge.solver("knot", { gamma = 0.5, latent = 1, tau = tau, r1 = M.r1, lr_schedule = "cosine", ema = M.ema }), quad
  elseif name == "gan_reg" then
    return monge.solver("gan_reg", { fidelity = "mse", lambda = 100, reference_every = math.max(1, math.floor(o.iters / 4)),
                                     lr_schedule = "cosine", ema = M.ema }), quad
  elseif name == "otip" then
    return uotip("identity"), full()
  elseif name == "otp" then
    return monge.solver("otp", { tau = tau, r1 = M.r1, lr_schedule = "cosine", smoothing = 0.5, smoothing_min = 0.05 }), full()
  elseif name == "uotip" then
    return uotip("kl"), full()
  elseif name == "uotip-quad" then
    return uotip("kl"), quad
  elseif name == "uotip-lik" then
    return uotip("kl"), lik
  elseif name == "supervised" then
    return monge.solver("supervised", { lr = 1e-4, lr_schedule = "cosine" }), quad
  end
  error("monge.fmnist.method: unknown method '" .. tostring(name) .. "' (" .. table.concat(M.trained, ", ") .. ")", 2)
end

--- Trains one method with the recipe and restores the test measurements. `o`: `solver`, `cost`,
--- `operator`, `noise` (degrades `measured` on the fly), `clean`, `measured`, `eval` (clean test
--- images for the trainer's PSNR curve), `cfg` (a config: iters, batch, eval_every, map,
--- potential), `dir` (the run directory, emptied first), `progress`, `precision` (training's:
--- "fp32", the default, or "bf16"), and `restore`: a
--- measurement tensor or a list of them. Returns { restored (a tensor, or a list like `restore`),
--- curve = { {iter, psnr}, ... }, losses, its_per_second, seconds, map (the map file) }.
function M.train(o)
  os.execute("rm -rf '" .. o.dir .. "'")
  local t0 = monge.clock()
  local run = monge.train {
    operator = o.operator, noise = o.noise, clean = o.clean, measured = o.measured, eval = o.eval,
    map = monge.network("unet", o.cfg.map), potential = monge.network("potential", o.cfg.potential),
    solver = o.solver, cost = o.cost, iters = o.cfg.iters, batch = o.cfg.batch, seed = 0,
    eval_every = o.cfg.eval_every, out = o.dir, progress = o.progress, precision = o.precision or "fp32",
  }
  local r = { curve = {}, losses = bench.read_log(o.dir), its_per_second = run.its_per_second, map = o.dir .. "/map.pt" }
  for _, e in ipairs(run.evals) do r.curve[#r.curve + 1] = { e.iter, e.psnr } end
  if monge.is_tensor(o.restore) then
    r.restored = run.map:restore(o.restore)
  else
    r.restored = {}
    for i, y in ipairs(o.restore) do r.restored[i] = run.map:restore(y) end
  end
  r.seconds = monge.clock() - t0
  return r
end

--- The FID classifier: `given` (a file, or "" for none), else `out`/classifier.pt, kept from an
--- earlier run or trained there now (the tiny recipe when `tiny`, the full one otherwise).
--- Returns { file, classifier, trained_here }.
function M.classifier(given, out, tiny, who)
  local file = (given and given ~= "") and given or (out .. "/classifier.pt")
  local trained = false
  local f = io.open(file, "rb")
  if f then
    f:close()
  elseif given and given ~= "" then
    error(who .. ": --classifier " .. given .. ": no such file", 2)
  else
    print(who .. ": training the FID classifier into " .. file)
    bench.train_classifier(tiny and "tiny" or "full", file, not tiny)
    trained = true
  end
  return { file = file, classifier = monge.classifier(file), trained_here = trained }
end

--- A scoring function for classifier `c` (M.classifier's table): score(restored, clean [, labels
--- [, reference]]) gives { psnr, psnr_std, ssim, ssim_std, fid, accuracy } of `restored` against
--- the paired `clean` images (PSNR and SSIM per image, then mean and standard deviation), FID
--- against `reference` (default `clean`) and the classifier's accuracy on `labels` (when given).
function M.scorer(c)
  local psnr_metric, ssim_metric = monge.metric("psnr"), monge.metric("ssim")
  local fid_metric = monge.metric("fid", { classifier = c.file })
  return function(restored, clean, labels, reference)
    local p, s = psnr_metric:per_image(restored, clean), ssim_metric:per_image(restored, clean)
    return { psnr = p:mean():item(), psnr_std = p:std():item(), ssim = s:mean():item(), ssim_std = s:std():item(),
             fid = fid_metric(restored, reference or clean),
             accuracy = labels and c.classifier:accuracy(restored, labels) or nil }
  end
end

return M
