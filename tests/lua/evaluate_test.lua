-- monge.evaluate: scores agree with the metrics computed directly and with monge.train's own
-- evaluation (seed 0 is its frozen set); the same seed gives the same set; the degraded input is
-- the baseline (lifted for an operator that changes size); results.json, grid.png and report.html
-- are written, and nothing is written when the input is bad.
local monge = require "monge"

local out = (arg[1] or ".") .. "/evaluate_test"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
monge.manual_seed(0)

local function close(a, b, tol, what) assert(math.abs(a - b) <= tol, string.format("%s: %.8g vs %.8g", what, a, b)) end
local function read(path)
  local f = assert(io.open(path, "rb"), "missing " .. path)
  local text = f:read("*a")
  f:close()
  return text
end
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- A deblurring map after a few iterations on tiny data; its training evaluation uses the same
-- 24 test images degraded with seed 0.
local train = monge.data.fashion_mnist { split = "train", limit = 64 }
local test = monge.data.fashion_mnist { split = "test", limit = 24 }.images
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local run = monge.train {
  operator = A, noise = noise, clean = train.images:narrow(1, 1, 32), measured = train.images:narrow(1, 33, 32), eval = test,
  map = monge.network("unet", { channels = 4, depth = 1 }), potential = monge.network("potential", { channels = 4, depth = 2 }),
  solver = monge.solver("uotip", {}), cost = monge.cost("quadratic", { operator = A }), iters = 3, batch = 8,
  out = out .. "/run", progress = false,
}
local map_file = out .. "/run/map.pt"
local map = monge.load_map(map_file)
assert(map.operator and map.operator.name == "gaussian_blur", "the map's operator is exposed")
assert(map.operator:params().sigma == 1.5)
assert(map.notes.solver == "uotip", "map notes: " .. tostring(map.notes.solver))

-- Scores against a direct computation.
local r = monge.evaluate { map = map_file, clean = test, noise = "gaussian:sigma=0.05", seed = 0, out = out .. "/eval", grid = 5,
                           batch = 7, progress = false, data = "fashion-mnist:test:24" }
local y = noise:sample(A(test), 0)
local restored = map:restore(y)
local degraded = A:lift(y):clamp(-1, 1)
local psnr, ssim = monge.metric("psnr"), monge.metric("ssim")
assert(r.count == 24 and r.order[1] == "psnr" and r.order[2] == "ssim")
close(r.metrics.psnr.restored, psnr(restored, test), 1e-4, "restored psnr")
close(r.metrics.psnr.degraded, psnr(degraded, test), 1e-6, "degraded psnr")
close(r.metrics.ssim.restored, ssim(restored, test), 1e-5, "restored ssim")
close(r.metrics.ssim.degraded, ssim(degraded, test), 1e-6, "degraded ssim")
close(r.metrics.psnr.gain, r.metrics.psnr.restored - r.metrics.psnr.degraded, 1e-9, "gain")
close(r.metrics.psnr.restored_std, psnr:per_image(restored, test):std():item(), 1e-4, "psnr std")
assert(#r.metrics.psnr.per_image.restored == 24 and #r.metrics.ssim.per_image.degraded == 24)
close(r.metrics.psnr.per_image.degraded[3], psnr:per_image(degraded, test)[3]:item(), 1e-6, "per-image psnr")
assert(r.metrics.psnr.higher_is_better and not r.metrics.psnr.set_level)
-- Seed 0 is monge.train's frozen evaluation set: the same numbers as recorded in the map.
close(r.metrics.psnr.restored, map.metrics.psnr, 1e-4, "psnr vs the map's own evaluation")
close(r.metrics.psnr.degraded, map.metrics.psnr_degraded, 1e-5, "degraded psnr vs the map's own evaluation")

-- Files: results.json with the scores, a grid of 3 rows x 5 images of 28 + 2 padding, a page
-- embedding it.
local json = read(out .. "/eval/results.json")
for _, key in ipairs { '"count": 24', '"seed": 0', '"noise": "gaussian:sigma=0.05"', '"data": "fashion%-mnist:test:24"',
                       '"per_image"', '"restored_std"', '"git_revision"', '"monge_version"', '"images_per_second"' } do
  assert(json:find(key), "results.json lacks " .. key)
end
assert(json:find(string.format('"restored": %.10g', r.metrics.psnr.restored), 1, true), "psnr in results.json")
local h = monge.image.header(out .. "/eval/grid.png")
assert(h.width == 5 * 30 + 2 and h.height == 3 * 30 + 2, string.format("grid is %dx%d", h.width, h.height))
local html = read(out .. "/eval/report.html")
assert(html:find('src="data:image/png;base64,', 1, true) and html:find("<svg", 1, true) and html:find("psnr", 1, true))
assert(not exists(out .. "/eval/results.json.tmp"))
local leftover = io.popen("ls -A '" .. out .. "/eval'"):read("*a")
assert(leftover == "grid.png\nreport.html\nresults.json\n", "only the three files: " .. leftover)

-- Same seed, same set and scores; another seed, another set. Given measurements: the same path.
local again = monge.evaluate { map = map, clean = test, noise = noise, seed = 0, progress = false }
assert(again.metrics.psnr.restored == r.metrics.psnr.restored and again.metrics.ssim.degraded == r.metrics.ssim.degraded)
assert(again.files == nil, "nothing written without out")
local other = monge.evaluate { map = map, clean = test, noise = noise, seed = 1, progress = false }
assert(other.metrics.psnr.degraded ~= r.metrics.psnr.degraded, "seed 1 draws other noise")
local given = monge.evaluate { map = map, clean = test, measured = y, metrics = { "psnr" }, progress = false }
assert(given.metrics.psnr.restored == r.metrics.psnr.restored and given.metrics.ssim == nil and given.seed == nil)

-- A set-level metric (a Lua table here, like FID) gets one number per set and no per-image list.
local set_level = { name = "mean_abs", higher_is_better = false,
                    score = function(a, b) return (a - b):abs():mean():item() end }
local s = monge.evaluate { map = map, clean = test, measured = y, metrics = { "psnr", set_level }, progress = false }
assert(s.metrics.mean_abs.set_level and s.metrics.mean_abs.per_image == nil and s.metrics.mean_abs.restored_std == nil)
close(s.metrics.mean_abs.degraded, (degraded - test):abs():mean():item(), 1e-6, "set-level metric")
assert(not s.metrics.mean_abs.higher_is_better)

-- Super-resolution: the baseline is the measurement lifted by the operator (bicubic x2).
local D = monge.operator("downsample", { factor = 2 })
local sr = monge.train {
  operator = D, clean = train.images:narrow(1, 1, 16), measured = train.images:narrow(1, 17, 16),
  map = monge.network("unet", { channels = 4, depth = 1 }), potential = monge.network("potential", { channels = 4, depth = 2 }),
  solver = monge.solver("uotip", {}), cost = monge.cost("quadratic", { operator = D }), iters = 1, batch = 4,
  out = out .. "/sr", progress = false,
}
local e = monge.evaluate { map = sr.map, clean = test, noise = "none", progress = false }
close(e.metrics.psnr.degraded, psnr(D:lift(D(test)):clamp(-1, 1), test), 1e-6, "lifted SR baseline")
assert(e.noise == "none")

-- Bad input: clear errors, nothing written.
local function fails(opts, pattern)
  local ok, err = pcall(monge.evaluate, opts)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
end
local bad = out .. "/bad"
fails({ map = map, clean = test, noise = "none", metrics = { "psnrr" }, out = bad }, "unknown plugin 'psnrr' %(did you mean 'psnr'%?%)")
fails({ map = map, clean = test, measured = y:narrow(1, 1, 3), out = bad }, "3 measurements for 24 clean images")
fails({ map = map, clean = test, measured = D(test), out = bad }, "are 24 x 1 x 14 x 14, the clean images 24 x 1 x 28 x 28")
fails({ map = map, clean = test:narrow(1, 1, 0), noise = "none", out = bad }, "the test set is empty")
fails({ map = map, clean = test, measured = y, noise = "none", out = bad }, "with 'measured' give neither")
fails({ map = out .. "/nope.pt", clean = test, out = bad }, "nope%.pt: no such map file")
fails({ map = map, clean = test, noise = "gaussian:sigma", out = bad }, "expected key=value")
fails({ map = map, clean = test, nosie = "none" }, "unknown option 'nosie' %(did you mean 'noise'%?%)")
-- Types and ranges from the declaration shared with `monge eval` (host/lua/script_options.cpp).
fails({ map = map, clean = test, batch = 2.5, out = bad }, "monge%.evaluate: parameter 'batch' expects an integer, got number 2%.5")
fails({ map = map, clean = test, grid = -1, out = bad }, "monge%.evaluate: parameter 'grid' expects an integer in %[0, %d+%], got %-1")
fails({ map = map, clean = test, device = "gpu", out = bad }, "parameter 'device' expects one of auto|cpu|cuda")
assert(not exists(bad), "nothing written after an error")

-- `monge eval`'s command line through the same declaration (monge.options.parse): typed options
-- with their defaults, the positional arguments, which options were given; a bad one is nil and
-- the message naming the flag.
local po, positional, given = monge.options.parse("eval", { "m.pt", "--data", "d", "--out", "o", "--seed=2", "--no-progress" })
assert(po.seed == 2 and po.grid == 8 and po.batch == 256 and po.progress == false and po.metrics == "psnr,ssim", "parsed options")
assert(#positional == 1 and positional[1] == "m.pt")
assert(given.seed and given.progress and not given.grid and not given.noise)
local none, msg = monge.options.parse("eval", { "--data", "d", "--out", "o", "--batch", "x" })
assert(none == nil and msg == "eval: --batch expects an integer in [1, 1099511627776], got 'x'", msg)
local checked = monge.options.check("monge.evaluate", { map = "m.pt", clean = test, seed = 4 })
assert(checked.seed == 4 and checked.grid == 8 and checked.device == "auto" and checked.map == nil, "checked options")
local ok, err = pcall(monge.options.check, "monge.evaluat", {})
assert(not ok and err:find("no option set 'monge.evaluat' %(did you mean 'monge.evaluate'%?%)"), err)
print("ok")
