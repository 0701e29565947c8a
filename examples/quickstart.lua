-- Quickstart: train UOTIP on Fashion-MNIST Gaussian deblurring (the GB task of BENCHMARKS.md),
-- then restore 1,000 held-out test images and compare PSNR/SSIM with the degraded input and with
-- the unpaired Wiener filter (the best classical method with the same knowledge: the blur, the
-- noise level and the clean images, no pairs). The map starts from that filter (its lift) and
-- learns a residual on top of it.
--
--   monge run examples/quickstart.lua [OUT_DIR] [ITERS] [reuse]
--
-- OUT_DIR (default runs/quickstart) receives log.jsonl, checkpoint.pt, map.pt, grid.png and
-- report.html. With "reuse" as third argument an existing OUT_DIR/map.pt is loaded instead of
-- training again, so a second demo is instant. With MONGE_FID_CLASSIFIER set to a Fashion-MNIST
-- classifier file (`monge bench fmnist-classifier` writes one), FID is reported too, and the
-- report draws the perception-distortion plane.
local monge = require "monge"

local out = arg[1] or "runs/quickstart"
local iters = tonumber(arg[2] or "1500")
local reuse = arg[3] == "reuse"
assert(iters and iters >= 1, "ITERS must be a positive number, got " .. tostring(arg[2]))
os.execute("mkdir -p '" .. out .. "'")

-- Unpaired by construction: clean images X have even indices, the signals behind the
-- measurements Y odd ones. Evaluation: the first 1,000 test images, degraded once with seed 0.
local train = monge.data.fashion_mnist { split = "train" }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local test = monge.data.fashion_mnist { split = "test", limit = 1000 }.images

local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
-- The blur with the unpaired Wiener filter as its lift Q: its prior (mean and power spectrum) from
-- the clean set, the noise variance from the noise model. The map T(y) = Q(y) + R(Q(y)) starts as
-- Q (R's last layer is zero) and is recorded with its filter in map.pt.
local Q = monge.wiener { operator = A, clean = clean, noise = noise }

-- c(y, x) = ||A(x) - y||^2 + lambda ||Q(y) - x||^2, summed over pixels, with the quadratic term
-- anchored at the Wiener restoration Q(y); the solver weights it by tau. lambda = 1.1 exceeds this
-- blur's Lipschitz bound (1.057 with reflect padding), so the twist condition of the paper's
-- Remark 1 holds.
local cost = monge.cost("likelihood", { operator = A, noise = noise }) + 1.1 * monge.cost("quadratic", { operator = Q })

local map
local existing = io.open(out .. "/map.pt")
if existing then existing:close() end
if reuse and existing then
  map = monge.load_map(out .. "/map.pt")
  print("reusing " .. out .. "/map.pt (delete it or drop 'reuse' to train again)")
else
  -- tau = 0.1, Adam at 2e-3 for both networks with a cosine decay, R1 0.05: the recipe measured on
  -- FMNIST-IP GB short (docs/results.md; docs/training.md, "Recipes"). The solver's default rates
  -- (1e-4 and 5e-5) leave the map near the Wiener filter in 1,500 steps.
  local run = monge.train {
    operator = Q, noise = noise, clean = clean, measured = measured, eval = test,
    map = monge.network("unet", { channels = 16, depth = 2 }),
    potential = monge.network("potential", { channels = 16, depth = 3 }),
    solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", tau = 0.1, r1 = 0.05, lr_map = 2e-3, lr_potential = 2e-3,
                                     lr_schedule = "cosine" }),
    cost = cost, iters = iters, batch = 64, seed = 0,
    eval_every = math.max(10, math.floor(iters / 12)), checkpoint_every = 500, out = out,
  }
  print(string.format("trained %d iterations in %.0f s (%.2f it/s)", run.iterations, run.seconds, run.its_per_second))
  print("iteration   PSNR lift       PSNR restored   SSIM lift       SSIM restored   (the lift: the Wiener filter)")
  for _, e in ipairs(run.evals) do
    print(string.format("%9d   %13.2f   %13.2f   %13.3f   %13.3f", e.iter, e.psnr_degraded, e.psnr, e.ssim_degraded, e.ssim))
  end
  map = run.map
end

-- Restore the test images (the same frozen measurements as the training's evaluation) and compare.
local y = noise:sample(A(test), 0)
local degraded = A:lift(y):clamp(-1, 1)
local wiener = monge.wiener_restore(Q, y):clamp(-1, 1)
local restored = map:restore(y)
-- The apply-time realism knob: half way between the Wiener restoration and the map.
local half = map:restore(y, { strength = 0.5 })
local p_deg, p_wie, p_res = monge.metrics.psnr(degraded, test), monge.metrics.psnr(wiener, test), monge.metrics.psnr(restored, test)
local s_deg, s_wie, s_res = monge.metrics.ssim(degraded, test), monge.metrics.ssim(wiener, test), monge.metrics.ssim(restored, test)
print(string.format("PSNR on %d test images: degraded %.2f dB, Wiener %.2f dB, restored %.2f dB (%+.2f dB over degraded, %+.2f over Wiener)",
  test:size(1), p_deg, p_wie, p_res, p_res - p_deg, p_res - p_wie))
print(string.format("SSIM on %d test images: degraded %.3f, Wiener %.3f, restored %.3f (%+.3f over degraded)", test:size(1), s_deg, s_wie,
  s_res, s_res - s_deg))
local p_half, s_half = monge.metrics.psnr(half, test), monge.metrics.ssim(half, test)
print(string.format("at --strength 0.5: PSNR %.2f dB (%+.2f over degraded), SSIM %.3f", p_half, p_half - p_deg, s_half))
-- FID (realism: the distance between the restored and the clean images' feature statistics, lower is
-- better) when a Fashion-MNIST classifier is given.
local fid = nil
local classifier_file = os.getenv("MONGE_FID_CLASSIFIER")
if classifier_file and classifier_file ~= "" then
  local metric = monge.metric("fid", { classifier = classifier_file })
  fid = { degraded = metric(degraded, test), wiener = metric(wiener, test), restored = metric(restored, test), half = metric(half, test) }
  print(string.format("FID on %d test images: degraded %.1f, Wiener %.1f, restored %.1f, at --strength 0.5 %.1f", test:size(1),
    fid.degraded, fid.wiener, fid.restored, fid.half))
end

-- Grid: rows of degraded | Wiener | restored | clean for 16 images.
local n = 16
local rows = { degraded:narrow(1, 1, n), wiener:narrow(1, 1, n), restored:narrow(1, 1, n), test:narrow(1, 1, n) }
monge.image.save(monge.image.grid(monge.cat(rows, 1), { nrow = n }), out .. "/grid.png")
print("wrote " .. out .. "/grid.png (rows: degraded, Wiener, restored, clean)")

-- report.html: the PSNR trajectory from log.jsonl as an SVG plot, the final numbers and the grid.
local points = {}
local log = io.open(out .. "/log.jsonl")
if log then
  for line in log:lines() do
    local it, psnr = line:match('^{"iter": (%d+).-"psnr": ([%d.]+)')
    if it then points[#points + 1] = { tonumber(it), tonumber(psnr) } end
  end
  log:close()
end
local svg = {}
if #points > 0 then
  local lo, hi, last = p_deg, p_deg, points[#points][1]
  for _, p in ipairs(points) do lo, hi = math.min(lo, p[2]), math.max(hi, p[2]) end
  lo, hi = math.floor(lo * 2 - 1) / 2, math.ceil(hi * 2 + 1) / 2
  local function xy(it, v) return 50 + 500 * it / last, 230 - 200 * (v - lo) / (hi - lo) end
  local line = {}
  for _, p in ipairs(points) do line[#line + 1] = string.format("%.1f,%.1f", xy(p[1], p[2])) end
  local _, yd = xy(0, p_deg)
  svg = {
    '<svg width="600" height="260" style="font: 12px sans-serif">',
    '<rect x="50" y="30" width="500" height="200" fill="none" stroke="#999"/>',
    string.format('<line x1="50" x2="550" y1="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="4"/>', yd, yd),
    string.format('<text x="555" y="%.1f" fill="#c33">degraded %.2f</text>', yd + 4, p_deg),
    '<polyline fill="none" stroke="#36c" stroke-width="2" points="' .. table.concat(line, " ") .. '"/>',
    string.format('<text x="45" y="34" text-anchor="end">%.1f dB</text><text x="45" y="234" text-anchor="end">%.1f dB</text>', hi, lo),
    string.format('<text x="550" y="250" text-anchor="end">iteration %d</text><text x="50" y="250">0</text>', last),
    '</svg>',
  }
end
local function fid_text(k) return fid and string.format("%.1f", fid[k]) or "(set MONGE_FID_CLASSIFIER)" end
-- The perception-distortion plane: PSNR (right is better) against FID (down is better).
local function plane()
  if not fid then return "" end
  local pts = { { "degraded", p_deg, fid.degraded, "#c33" }, { "Wiener", p_wie, fid.wiener, "#888" },
                { "restored", p_res, fid.restored, "#36c" }, { "strength 0.5", p_half, fid.half, "#6a3" } }
  local x0, x1, y1 = math.huge, -math.huge, 0
  for _, p in ipairs(pts) do x0, x1, y1 = math.min(x0, p[2]), math.max(x1, p[2]), math.max(y1, p[3]) end
  x0, x1, y1 = math.floor(x0) - 0.5, math.ceil(x1) + 0.5, y1 * 1.1
  local s = { '<h2>Perception-distortion plane (better: right and down)</h2>',
              '<svg width="600" height="300" style="font: 12px sans-serif">',
              '<rect x="60" y="20" width="480" height="240" fill="none" stroke="#999"/>',
              string.format('<text x="60" y="290">PSNR %.1f dB</text><text x="540" y="290" text-anchor="end">%.1f dB</text>', x0, x1),
              string.format('<text x="55" y="24" text-anchor="end">FID %.0f</text><text x="55" y="264" text-anchor="end">0</text>', y1) }
  for _, p in ipairs(pts) do
    local x, y = 60 + 480 * (p[2] - x0) / (x1 - x0), 260 - 240 * p[3] / y1
    s[#s + 1] = string.format('<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/><text x="%.1f" y="%.1f">%s</text>', x, y, p[4], x + 8, y - 6, p[1])
  end
  s[#s + 1] = '</svg>'
  return table.concat(s, "\n")
end
local html = io.open(out .. "/report.html.tmp", "w")
html:write(string.format([[<!doctype html><meta charset="utf-8"><title>monge quickstart</title>
<body style="font-family: sans-serif; max-width: 960px">
<h1>UOTIP on Fashion-MNIST Gaussian deblurring</h1>
<p>%d test images, Gaussian blur (13 taps, sigma 1.5) with Gaussian noise (sigma 0.05).</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th></th><th>PSNR (dB)</th><th>SSIM</th><th>FID</th></tr>
<tr><td>degraded</td><td>%.2f</td><td>%.3f</td><td>%s</td></tr>
<tr><td>Wiener (unpaired: the blur, the noise level and the clean set's spectrum)</td><td>%.2f</td><td>%.3f</td><td>%s</td></tr>
<tr><td>restored (UOTIP map on the Wiener lift)</td><td>%.2f</td><td>%.3f</td><td>%s</td></tr>
<tr><td>restored at strength 0.5 (half way from the Wiener restoration to the map)</td><td>%.2f</td><td>%.3f</td><td>%s</td></tr></table>
%s
<h2>PSNR of the map (its moving average) on the test images during training</h2>
%s
<h2>Rows: degraded, Wiener, restored, clean</h2>
<img src="grid.png" style="width: 100%%; image-rendering: pixelated">
</body>
]], test:size(1), p_deg, s_deg, fid_text("degraded"), p_wie, s_wie, fid_text("wiener"), p_res, s_res, fid_text("restored"), p_half,
  s_half, fid_text("half"), plane(), #svg > 0 and table.concat(svg, "\n") or "<p>(no training log in this directory)</p>"))
html:close()
os.rename(out .. "/report.html.tmp", out .. "/report.html")
print("wrote " .. out .. "/report.html")
