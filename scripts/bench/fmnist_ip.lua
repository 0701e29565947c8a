-- FMNIST-IP: every method of BENCHMARKS.md on one Fashion-MNIST task, same networks and budgets.
--
--   monge bench fmnist-ip [--task gb|sr|hdr|nb] [--config tiny|short|full] [--out DIR]
--                         [--methods degraded,wiener,wiener-paired,not,otip,uotip,uotip-quad,uotip-lik,supervised]
--                         (default: those, the protocol's, without wiener where the operator is not linear
--                         and shift invariant (hdr, nb); knot, gan_reg and otp on request)
--                         [--classifier FILE] [--lift auto|wiener|fitted|operator] [--anchor lift|measurement]
--                         [--tau T] [--taus T1,T2,...] [--iters N] [--precision fp32|bf16]
-- --taus trains uotip again at each further cost weight: its curve on the perception-distortion plane.
-- --precision is the trained methods' training precision (monge.train's `precision`; the maps are
-- applied in fp32 either way), so that a bf16 run and an fp32 run compare speed and quality.
--
-- Clean set X: even training images; measurements Y: odd training images degraded on the fly
-- (unpaired); test set: the first images of the test split degraded once with seed 0. Methods:
--   degraded    the operator's own lift Q(y) as it is (identity; bicubic for sr)
--   wiener      the unpaired Wiener filter: the operator's transfer function, the clean set's power spectrum
--               and the noise model's variance, by FFT over each image with reflect padding (no pairs;
--               gb and sr only: it needs a linear shift-invariant operator)
--   wiener-paired  the least-squares linear (15 x 15 FIR) filter on Q(y), fitted on pairs simulated from the
--               clean set with the known operator and noise model (monge.wiener.fit): no real pairs, the
--               same knowledge as uotip; the baseline of hdr and nb, and what --lift auto starts them from
--   not         balanced OT, quadratic cost ||Q(y) - x||^2 only: the NOT solver with the strong cost
--               (a deterministic map, K_T = 10 map updates per potential update)
--   knot        kernel NOT: stochastic map T(Q(y), z), distance kernel, gamma 0.5, quadratic cost
--   gan_reg     regularised GAN (WGAN-GP critic) with the mse fidelity against a reference map renewed
--               every quarter of the run (Gazdieva et al.'s remedy for its bias); lambda 100: a
--               round may move an image by about D / (2 lambda) = 3.9 in norm (the toy's closed
--               form for D = 784 values), an RMSE of 0.14 on [-1, 1], half the degraded GB input's
--               (0.29), so four rounds can close the gap and settle; Adam 1e-4 (betas 0.5, 0.9),
--               the recipe's cosine decay and moving average, the critic's gradient penalty
--               (gp 10) in place of R1
--   otip        balanced OT, full cost: likelihood + lambda quadratic
--   otp         otip on smoothed measurements y + s n, s annealed 0.5 -> 0.05 (kept at apply: each
--               restoration is one sample of the learned plan)
--   uotip       unbalanced (KL) OT, full cost
--   uotip-quad  unbalanced, quadratic cost only (blind)
--   uotip-lik   unbalanced, likelihood cost only
--   supervised  the same map network trained on pairs with MSE (the upper bound)
-- Every trained method uses the quickstart's recipe (unet and potential, batch 64, Adam, tau 0.1,
-- cosine learning-rate decay; the UOTIP family at rate 2e-3 for both networks with R1 0.05, the
-- NOT solvers R1 0.2 and a moving average) and starts from the same lift: with --lift auto
-- (the default) the unpaired Wiener filter where the operator allows it (the residual map is then the
-- Wiener restoration before training), the fitted lift otherwise (the wiener-paired filter, fitted on
-- pairs simulated from the clean set: hdr, nb); --anchor says where the
-- quadratic cost's Q(y) is (the lift, or the paper's measurement). Writes DIR/results.json (per-method PSNR and
-- SSIM with their spread over the test images, FID and the classifier's accuracy, curves, timings,
-- machine, git revision),
-- DIR/grid.png and a self-contained DIR/report.html; each method's run directory (log, map) is
-- kept under DIR/runs/. FID and accuracy use monge's Fashion-MNIST classifier: --classifier FILE,
-- else DIR/classifier.pt, trained there first when missing (the tiny recipe for the tiny config,
-- the full one, >= 90% accurate, otherwise).
local monge = require "monge"
local bench = require "monge.bench"
local fmnist = require "monge.fmnist"
local report = require "monge.report"
local wiener = require "monge.wiener"

-- The default set is BENCHMARKS.md's eight methods; the other solvers cost as much again on 2
-- cores and are measured on request (--methods).
local protocol_methods = { "degraded", "wiener", "wiener-paired", "not", "otip", "uotip", "uotip-quad", "uotip-lik", "supervised" }
local all_methods = { unpack(protocol_methods) }
for _, m in ipairs { "knot", "gan_reg", "otp" } do all_methods[#all_methods + 1] = m end
local opts = bench.options("fmnist-ip", arg, { "task", "config", "out", "methods", "classifier", "lift", "anchor", "tau", "taus", "iters", "precision" },
                           { task = "gb", config = "short", classifier = "", lift = fmnist.lift, anchor = fmnist.anchor,
                             precision = "fp32" })

local cfg = fmnist.configs[opts.config]
if not cfg then error("fmnist-ip: --config must be tiny, short or full, got '" .. opts.config .. "'", 0) end
local tau = tonumber(opts.tau or fmnist.tau)
if not tau or not (tau > 0) then error("fmnist-ip: --tau must be a positive number, got '" .. tostring(opts.tau) .. "'", 0) end
if opts.iters then
  local iters = tonumber(opts.iters)
  if not iters or iters < 1 or iters ~= math.floor(iters) then
    error("fmnist-ip: --iters must be a positive whole number, got '" .. opts.iters .. "'", 0)
  end
  local c = {}
  for k, v in pairs(cfg) do c[k] = v end
  c.iters, c.eval_every = iters, math.max(1, math.min(cfg.eval_every, iters))
  cfg = c
end
if opts.precision ~= "fp32" and opts.precision ~= "bf16" then
  error("fmnist-ip: --precision must be fp32 or bf16, got '" .. opts.precision .. "'", 0)
end
if opts.anchor ~= "lift" and opts.anchor ~= "measurement" then
  error("fmnist-ip: --anchor must be lift or measurement, got '" .. opts.anchor .. "'", 0)
end
local A = fmnist.task(opts.task, "fmnist-ip")
-- Data and task.
local train = fmnist.train_sets(cfg.train)
local clean, measured = train.clean, train.measured
local noise = monge.noise("gaussian", { sigma = 0.05 })
-- The lift every trained method starts from, and the unpaired Wiener filter (the same one, by FFT).
local Q, lift_name, W = fmnist.lifted(A, noise, clean, opts.lift, "fmnist-ip")
if not opts.methods then
  local list = {}
  for _, m in ipairs(protocol_methods) do
    if m ~= "wiener" or W then list[#list + 1] = m end
  end
  opts.methods = table.concat(list, ",")
  if not W then print("fmnist-ip: task " .. opts.task .. ": no unpaired Wiener filter (its operator is not linear and shift invariant)") end
end
local methods = {}
for name in opts.methods:gmatch("[^,]+") do
  local known = false
  for _, m in ipairs(all_methods) do known = known or m == name end
  assert(known, "fmnist-ip: unknown method '" .. name .. "' (" .. table.concat(all_methods, ", ") .. ")")
  if name == "wiener" and not W then
    error("fmnist-ip: method wiener needs a linear shift-invariant operator; task " .. opts.task ..
          "'s is not (use wiener-paired, the filter fitted on pairs)", 0)
  end
  methods[#methods + 1] = name
end
local out = opts.out or ("runs/fmnist-ip-" .. opts.task .. "-" .. opts.config)
os.execute("mkdir -p '" .. out .. "/runs'")

local test_set = monge.data.fashion_mnist { split = "test", limit = cfg.test }
local test, test_labels = test_set.images, test_set.labels
local y_test = noise:sample(A(test), 0)
local degraded = A:lift(y_test):clamp(-1, 1)
local lambda = fmnist.lambda(A)
local lik = monge.cost("likelihood", { operator = A, noise = noise })

-- The FID classifier: given, kept from an earlier run in DIR, or trained now.
local fid_classifier = fmnist.classifier(opts.classifier, out, opts.config == "tiny", "fmnist-ip")
local classifier_file, classifier_trained = fid_classifier.file, fid_classifier.trained_here
local classifier_accuracy = fid_classifier.classifier:accuracy(test, test_labels)
local scorer = fmnist.scorer(fid_classifier)
local function score(restored) return scorer(restored, test, test_labels) end

print(string.format("fmnist-ip: task %s, config %s (%d iterations, batch %d, %d test images), %d threads, training in %s, lift %s, anchor %s, tau %g, methods %s",
  opts.task, opts.config, cfg.iters, cfg.batch, test:size(1), monge.threads(), opts.precision, lift_name == "operator" and "operator's own" or lift_name,
  opts.anchor, tau, table.concat(methods, ", ")))
local results, restored_of = {}, {}
--- Restores the test measurements with method `name` (trained ones at cost weight `t`) and scores it.
local function run_method(name, t, tag)
  local t0 = monge.clock()
  local r = { name = tag or name }
  local restored
  if name == "degraded" then
    restored = degraded
  elseif name == "wiener" then
    restored = monge.wiener_restore(W, y_test):clamp(-1, 1)
  elseif name == "wiener-paired" then
    local pairs_x = clean:narrow(1, 1, math.min(clean:size(1), 2000))
    local filter = wiener.fit { degraded = A:lift(noise:sample(A(pairs_x), 1)), clean = pairs_x, size = 15 }
    restored = filter:apply(degraded)
  else
    local solver, cost = fmnist.method(name, { operator = Q, plain = A, anchor = opts.anchor, lik = lik, lambda = lambda,
                                               iters = cfg.iters, tau = t })
    local run = fmnist.train {
      solver = solver, cost = cost, operator = Q, noise = noise, clean = clean, measured = measured, eval = test,
      cfg = cfg, dir = out .. "/runs/" .. r.name, progress = opts.config ~= "tiny", restore = y_test,
      precision = opts.precision,
    }
    restored = run.restored
    r.curve, r.losses, r.its_per_second, r.map = run.curve, run.losses, run.its_per_second, run.map
    if name ~= "supervised" then r.tau = t end
  end
  for k, v in pairs(score(restored)) do r[k] = v end
  r.seconds = monge.clock() - t0
  restored_of[r.name] = restored
  results[#results + 1] = r
  print(string.format("  %-14s PSNR %6.2f dB (sd %.2f)  SSIM %.4f (sd %.3f)  FID %8.3f  accuracy %.4f  %7.1f s", r.name, r.psnr,
    r.psnr_std, r.ssim, r.ssim_std, r.fid, r.accuracy, r.seconds))
  return r
end
for _, name in ipairs(methods) do run_method(name, tau) end
-- uotip over more cost weights: the realism knob's curve on the perception-distortion plane.
local tau_curve = {}
for _, r in ipairs(results) do
  if r.name == "uotip" then tau_curve[#tau_curve + 1] = { psnr = r.psnr, fid = r.fid, tau = tau, label = string.format("tau %g", tau) } end
end
for item in (opts.taus or ""):gmatch("[^,]+") do
  local t = tonumber(item)
  if not t or not (t > 0) then error("fmnist-ip: --taus takes positive numbers, got '" .. item .. "'", 0) end
  if t ~= tau or #tau_curve == 0 then
    local r = run_method("uotip", t, string.format("uotip-tau%g", t))
    tau_curve[#tau_curve + 1] = { psnr = r.psnr, fid = r.fid, tau = t, label = string.format("tau %g", t) }
  end
end
table.sort(tau_curve, function(a, b) return a.tau < b.tau end)
-- The apply-time knob on the recipe's uotip map: Q(y) + s (T(Q(y)) - Q(y)) for s from 0 (the lift) to 1.
local strength_curve = {}
for _, r in ipairs(results) do
  if r.name == "uotip" and r.map then
    local map = monge.load_map(r.map)
    for _, st in ipairs { 0, 0.25, 0.5, 0.75, 1 } do
      local sc = score(map:restore(y_test, { strength = st }))
      strength_curve[#strength_curve + 1] = { strength = st, psnr = sc.psnr, ssim = sc.ssim, fid = sc.fid, accuracy = sc.accuracy,
                                              label = string.format("s %g", st) }
      print(string.format("  uotip at strength %.2f: PSNR %6.2f dB  SSIM %.4f  FID %8.3f  accuracy %.4f", st, sc.psnr, sc.ssim, sc.fid,
        sc.accuracy))
    end
  end
end

-- The grid: clean, then each method, for the first 10 test images.
local n = math.min(10, test:size(1))
local rows = { test:narrow(1, 1, n) }
for _, r in ipairs(results) do rows[#rows + 1] = restored_of[r.name]:narrow(1, 1, n) end
monge.image.save(monge.image.grid(monge.cat(rows, 1), { nrow = n }), out .. "/grid.png")

local order_of_rows = {}
for _, r in ipairs(results) do order_of_rows[#order_of_rows + 1] = r.name end
local ranked = {}
for _, r in ipairs(results) do ranked[#ranked + 1] = r end
table.sort(ranked, function(a, b) return a.psnr > b.psnr end)
local order = {}
for _, r in ipairs(ranked) do order[#order + 1] = r.name end
print("ordering by PSNR: " .. table.concat(order, " > "))

report.write_json(out .. "/results.json", {
  benchmark = "fmnist-ip", task = opts.task, config = opts.config, git_revision = bench.git_revision(),
  machine = { cpu = bench.machine(), threads = monge.threads() },
  settings = { iterations = cfg.iters, batch = cfg.batch, precision = opts.precision, train_images = train.count, test_images = test:size(1),
               map = cfg.map, potential = cfg.potential, tau = tau, r1 = fmnist.r1, lambda = lambda, noise_sigma = 0.05,
               lift = lift_name, anchor = opts.anchor,
               classifier = { file = classifier_file, trained_here = classifier_trained, clean_accuracy = classifier_accuracy } },
  methods = results, ordering_by_psnr = order, tau_curve = tau_curve, strength_curve = strength_curve,
})

-- The report.
local table_rows, psnr_bars, ssim_bars, curves, map_losses, base = {}, {}, {}, {}, {}, nil
for _, r in ipairs(results) do if r.name == "degraded" then base = r.psnr end end
for _, r in ipairs(results) do
  table_rows[#table_rows + 1] = { r.name, string.format("%.2f ± %.2f", r.psnr, r.psnr_std),
    base and string.format("%+.2f", r.psnr - base) or "", string.format("%.4f ± %.3f", r.ssim, r.ssim_std),
    string.format("%.3f", r.fid), string.format("%.4f", r.accuracy), string.format("%.0f", r.seconds), bold = r.name == order[1] }
  psnr_bars[#psnr_bars + 1] = { label = r.name, value = r.psnr }
  ssim_bars[#ssim_bars + 1] = { label = r.name, value = r.ssim }
  if r.curve then
    curves[#curves + 1] = { name = r.name, points = r.curve }
    map_losses[#map_losses + 1] = { name = r.name, points = r.losses.loss_map }
  end
end
local plane_curves = {}
if #tau_curve > 1 then plane_curves[#plane_curves + 1] = { name = "uotip over tau", points = tau_curve } end
if #strength_curve > 1 then plane_curves[#plane_curves + 1] = { name = "uotip over --strength", points = strength_curve } end
local plane_points = {}
for _, r in ipairs(results) do plane_points[#plane_points + 1] = { name = r.name, psnr = r.psnr, fid = r.fid } end
local lines = {}
for _, r in ipairs(results) do
  if r.name == "degraded" or r.name == "wiener" then lines[#lines + 1] = { y = r.psnr, label = r.name } end
end
local parts = {
  string.format("<p>Task <b>%s</b> (noise sigma 0.05), config <b>%s</b>: %d iterations, batch %d, unet %d/%d and potential %d/%d, " ..
    "%d training images (half clean, half measured, unpaired), %d test images degraded with seed 0. %s, %d threads, git %s.</p>",
    opts.task, opts.config, cfg.iters, cfg.batch, cfg.map.channels, cfg.map.depth, cfg.potential.channels, cfg.potential.depth,
    train.count, test:size(1), report.escape(bench.machine()), monge.threads(), bench.git_revision()),
  "<h2>Scores on the test images</h2>",
  report.table({ "method", "PSNR (dB, ± sd over images)", "vs degraded", "SSIM (± sd)", "FID", "accuracy", "seconds" }, table_rows),
  string.format("<p>FID and accuracy in the features and predictions of monge's Fashion-MNIST classifier (%s), whose accuracy " ..
    "on the clean test images is %.4f.</p>", report.escape(classifier_file), classifier_accuracy),
  "<p>Ordering by PSNR: " .. report.escape(table.concat(order, " > ")) .. "</p>",
  "<h2>Accuracy against realism</h2><p>The perception-distortion plane: each method's PSNR against its FID. The best " ..
    "corner is bottom right; a method is dominated when another lies right of and below it. The line is uotip over its " ..
    "cost weight tau (a larger tau holds the map closer to its anchor), and the recipe's map applied at --strength s from 0 " ..
    "(its lift) to 1 (the realism knob at apply time).</p>",
  report.plane { points = plane_points, curves = plane_curves },
  report.bar_chart { title = "PSNR (dB)", bars = psnr_bars, unit = "dB" },
  report.bar_chart { title = "SSIM", bars = ssim_bars },
  "<h2>Training</h2>",
  report.line_plot { title = "PSNR of the exported map on the test images", series = curves, lines = lines,
                     xlabel = "iteration", ylabel = "PSNR (dB)" },
  report.line_plot { title = "map loss", series = map_losses, xlabel = "iteration", ylabel = "loss_map" },
  "<h2>Test images</h2><p>Rows: clean, then " .. report.escape(table.concat(order_of_rows, ", ")) .. ".</p>",
  report.image(out .. "/grid.png", "width: 100%; image-rendering: pixelated"),
}
report.page(out .. "/report.html", "FMNIST-IP, task " .. opts.task .. ", config " .. opts.config, parts)
print("wrote " .. out .. "/results.json, " .. out .. "/grid.png and " .. out .. "/report.html")
