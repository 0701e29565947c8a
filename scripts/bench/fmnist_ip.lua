-- FMNIST-IP: every method of BENCHMARKS.md on one Fashion-MNIST task, same networks and budgets.
--
--   monge bench fmnist-ip [--task gb|sr|hdr|nb] [--config tiny|short|full] [--out DIR]
--                         [--methods degraded,wiener,not,knot,gan_reg,otip,otp,uotip,uotip-quad,uotip-lik,supervised]
--                         [--classifier FILE]
--
-- Clean set X: even training images; measurements Y: odd training images degraded on the fly
-- (unpaired); test set: the first images of the test split degraded once with seed 0. Methods:
--   degraded    Q(y) as it is
--   wiener      the least-squares linear filter on Q(y), fitted on training pairs (monge.wiener)
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
-- R1 0.2, cosine learning-rate decay, moving average). Writes DIR/results.json (per-method PSNR and
-- SSIM with their spread over the test images, FID and the classifier's accuracy, curves, timings,
-- machine, git revision),
-- DIR/grid.png and a self-contained DIR/report.html; each method's run directory (log, map) is
-- kept under DIR/runs/. FID and accuracy use monge's Fashion-MNIST classifier: --classifier FILE,
-- else DIR/classifier.pt, trained there first when missing (the tiny recipe for the tiny config,
-- the full one, >= 90% accurate, otherwise).
local monge = require "monge"
local bench = require "monge.bench"
local report = require "monge.report"
local wiener = require "monge.wiener"

local all_methods = { "degraded", "wiener", "not", "knot", "gan_reg", "otip", "otp", "uotip", "uotip-quad", "uotip-lik", "supervised" }
local opts = bench.options("fmnist-ip", arg, { "task", "config", "out", "methods", "classifier" },
                           { task = "gb", config = "short", methods = table.concat(all_methods, ","), classifier = "" })

local configs = {
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
local cfg = assert(configs[opts.config], "fmnist-ip: --config must be tiny, short or full, got '" .. opts.config .. "'")
local tasks = {
  gb = function() return monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" }) end,
  sr = function() return monge.operator("downsample", { factor = 2 }) end,
  hdr = function() return monge.operator("hdr_clip", { scale = 2 }) end,
  nb = function() return monge.operator("nonlinear_blur", { length = 9, angle = 45, strength = 1.5 }) end,
}
assert(tasks[opts.task], "fmnist-ip: --task must be gb, sr, hdr or nb, got '" .. opts.task .. "'")
local methods = {}
for name in opts.methods:gmatch("[^,]+") do
  local known = false
  for _, m in ipairs(all_methods) do known = known or m == name end
  assert(known, "fmnist-ip: unknown method '" .. name .. "' (" .. table.concat(all_methods, ", ") .. ")")
  methods[#methods + 1] = name
end
local out = opts.out or ("runs/fmnist-ip-" .. opts.task .. "-" .. opts.config)
os.execute("mkdir -p '" .. out .. "/runs'")

-- Data and task.
local train = monge.data.fashion_mnist { split = "train", limit = cfg.train }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local test_set = monge.data.fashion_mnist { split = "test", limit = cfg.test }
local test, test_labels = test_set.images, test_set.labels
local A = tasks[opts.task]()
local noise = monge.noise("gaussian", { sigma = 0.05 })
local y_test = noise:sample(A(test), 0)
local degraded = A:lift(y_test):clamp(-1, 1)
-- lambda above the operator's Lipschitz bound (twist condition), as the quickstart's 1.1 for GB.
local lambda = 1.1 * math.max(1, A:lipschitz() or 1)
local lik = monge.cost("likelihood", { operator = A, noise = noise })
local quad = monge.cost("quadratic", { operator = A })
local full = lik + lambda * quad

local function uotip(psi) return monge.solver("uotip", { psi1 = psi, psi2 = psi, tau = 0.1, r1 = 0.2, lr_schedule = "cosine" }) end
local recipes = {
  -- NOT and kernel NOT with the recipe's cost weight, R1, rate, schedule and moving average.
  ["not"] = function()
    return monge.solver("not", { gamma = 0, latent = 0, tau = 0.1, r1 = 0.2, lr_schedule = "cosine", ema = 0.999 }), quad
  end,
  knot = function()
    return monge.solver("knot", { gamma = 0.5, latent = 1, tau = 0.1, r1 = 0.2, lr_schedule = "cosine", ema = 0.999 }), quad
  end,
  gan_reg = function()
    return monge.solver("gan_reg", { fidelity = "mse", lambda = 100, reference_every = math.max(1, math.floor(cfg.iters / 4)),
                                     lr_schedule = "cosine", ema = 0.999 }), quad
  end,
  otip = function() return uotip("identity"), full end,
  otp = function()
    return monge.solver("otp", { tau = 0.1, r1 = 0.2, lr_schedule = "cosine", smoothing = 0.5, smoothing_min = 0.05 }), full
  end,
  uotip = function() return uotip("kl"), full end,
  ["uotip-quad"] = function() return uotip("kl"), quad end,
  ["uotip-lik"] = function() return uotip("kl"), lik end,
  supervised = function() return monge.solver("supervised", { lr = 1e-4, lr_schedule = "cosine" }), quad end,
}

-- The FID classifier: given, kept from an earlier run in DIR, or trained now.
local classifier_file = opts.classifier ~= "" and opts.classifier or (out .. "/classifier.pt")
local classifier_trained = false
if opts.classifier == "" and not io.open(classifier_file, "rb") then
  print("fmnist-ip: training the FID classifier into " .. classifier_file)
  bench.train_classifier(opts.config == "tiny" and "tiny" or "full", classifier_file, opts.config ~= "tiny")
  classifier_trained = true
end
local classifier = monge.classifier(classifier_file)
local classifier_accuracy = classifier:accuracy(test, test_labels)

local psnr_metric, ssim_metric = monge.metric("psnr"), monge.metric("ssim")
local fid_metric = monge.metric("fid", { classifier = classifier_file })
local function score(restored)
  local p, s = psnr_metric:per_image(restored, test), ssim_metric:per_image(restored, test)
  return { psnr = p:mean():item(), psnr_std = p:std():item(), ssim = s:mean():item(), ssim_std = s:std():item(),
           fid = fid_metric(restored, test), accuracy = classifier:accuracy(restored, test_labels) }
end

local function read_log(dir)
  local losses = { loss_map = {}, loss_potential = {} }
  for line in io.lines(dir .. "/log.jsonl") do
    local it = tonumber(line:match('^{"iter": (%d+)'))
    for key, list in pairs(losses) do
      local v = tonumber(line:match('"' .. key .. '": ([-%d.e+]+)'))
      if it and v then list[#list + 1] = { it, v } end
    end
  end
  return losses
end

print(string.format("fmnist-ip: task %s, config %s (%d iterations, batch %d, %d test images), %d threads, methods %s",
  opts.task, opts.config, cfg.iters, cfg.batch, test:size(1), monge.threads(), table.concat(methods, ", ")))
local results, restored_of = {}, {}
for _, name in ipairs(methods) do
  local t0 = monge.clock()
  local r = { name = name }
  local restored
  if name == "degraded" then
    restored = degraded
  elseif name == "wiener" then
    local pairs_x = clean:narrow(1, 1, math.min(clean:size(1), 2000))
    local filter = wiener.fit { degraded = A:lift(noise:sample(A(pairs_x), 1)), clean = pairs_x, size = 15 }
    restored = filter:apply(degraded)
  else
    local solver, cost = recipes[name]()
    local dir = out .. "/runs/" .. name
    os.execute("rm -rf '" .. dir .. "'")
    local run = monge.train {
      operator = A, noise = noise, clean = clean, measured = measured, eval = test,
      map = monge.network("unet", cfg.map), potential = monge.network("potential", cfg.potential),
      solver = solver, cost = cost, iters = cfg.iters, batch = cfg.batch, seed = 0,
      eval_every = cfg.eval_every, out = dir, progress = opts.config ~= "tiny",
    }
    restored = run.map:restore(y_test)
    r.curve = {}
    for _, e in ipairs(run.evals) do r.curve[#r.curve + 1] = { e.iter, e.psnr } end
    r.losses = read_log(dir)
    r.its_per_second = run.its_per_second
    r.map = dir .. "/map.pt"
  end
  for k, v in pairs(score(restored)) do r[k] = v end
  r.seconds = monge.clock() - t0
  restored_of[name] = restored
  results[#results + 1] = r
  print(string.format("  %-11s PSNR %6.2f dB (sd %.2f)  SSIM %.4f (sd %.3f)  FID %8.3f  accuracy %.4f  %7.1f s", name, r.psnr,
    r.psnr_std, r.ssim, r.ssim_std, r.fid, r.accuracy, r.seconds))
end

-- The grid: clean, then each method, for the first 10 test images.
local n = math.min(10, test:size(1))
local rows = { test:narrow(1, 1, n) }
for _, name in ipairs(methods) do rows[#rows + 1] = restored_of[name]:narrow(1, 1, n) end
monge.image.save(monge.image.grid(monge.cat(rows, 1), { nrow = n }), out .. "/grid.png")

local ranked = {}
for _, r in ipairs(results) do ranked[#ranked + 1] = r end
table.sort(ranked, function(a, b) return a.psnr > b.psnr end)
local order = {}
for _, r in ipairs(ranked) do order[#order + 1] = r.name end
print("ordering by PSNR: " .. table.concat(order, " > "))

report.write_json(out .. "/results.json", {
  benchmark = "fmnist-ip", task = opts.task, config = opts.config, git_revision = bench.git_revision(),
  machine = { cpu = bench.machine(), threads = monge.threads() },
  settings = { iterations = cfg.iters, batch = cfg.batch, train_images = train.count, test_images = test:size(1),
               map = cfg.map, potential = cfg.potential, tau = 0.1, r1 = 0.2, lambda = lambda, noise_sigma = 0.05,
               classifier = { file = classifier_file, trained_here = classifier_trained, clean_accuracy = classifier_accuracy } },
  methods = results, ordering_by_psnr = order,
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
  report.bar_chart { title = "PSNR (dB)", bars = psnr_bars, unit = "dB" },
  report.bar_chart { title = "SSIM", bars = ssim_bars },
  "<h2>Training</h2>",
  report.line_plot { title = "PSNR of the exported map on the test images", series = curves, lines = lines,
                     xlabel = "iteration", ylabel = "PSNR (dB)" },
  report.line_plot { title = "map loss", series = map_losses, xlabel = "iteration", ylabel = "loss_map" },
  "<h2>Test images</h2><p>Rows: clean, then " .. report.escape(table.concat(methods, ", ")) .. ".</p>",
  report.image(out .. "/grid.png", "width: 100%; image-rendering: pixelated"),
}
report.page(out .. "/report.html", "FMNIST-IP, task " .. opts.task .. ", config " .. opts.config, parts)
print("wrote " .. out .. "/results.json, " .. out .. "/grid.png and " .. out .. "/report.html")
