-- Plugins from Lua: construction with params tables, errors users see, methods of each kind,
-- Lua-defined operators and costs used where plugins are accepted, metrics.
local monge = require "monge"
local here = "plugins_test.lua:"

local function expect_error(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
  return err
end

-- Listing.
local names = {}
for _, p in ipairs(monge.plugins()) do names[p.name] = p end
for _, n in ipairs { "identity", "gaussian_blur", "downsample", "hdr_clip", "gaussian" } do
  assert(names[n], "plugin " .. n .. " not listed")
  assert(names[n].file:find(n .. ".monge.so", 1, true), names[n].file)
  assert(names[n].version:match("^%d+%.%d+%.%d+$"), names[n].version)
end
assert(names.gaussian.kind == "noise" and names.gaussian_blur.kind == "operator")
assert(monge.describe("gaussian_blur"):find("sigma", 1, true))

-- Construction, defaults and resolved params.
local A = monge.operator("gaussian_blur", { sigma = 2 })
assert(A.name == "gaussian_blur" and A.kind == "operator")
local p = A:params()
assert(p.sigma == 2 and p.size == 13 and p.padding == "reflect", tostring(A))
assert(tostring(A):find("operator gaussian_blur {padding = \"reflect\", sigma = 2, size = 13}", 1, true), tostring(A))

-- Errors: unknown key with suggestion, wrong type, range, wrong kind; all carry this file:line.
local err = expect_error("unknown parameter 'sigmma' %(did you mean 'sigma'%?%)", monge.operator, "gaussian_blur", { sigmma = 1 })
err = expect_error(here .. "%d+: gaussian_blur: unknown parameter", function() return monge.operator("gaussian_blur", { sigmma = 1 }) end)
expect_error("parameter 'sigma' expects a number, got string \"wide\"", monge.operator, "gaussian_blur", { sigma = "wide" })
expect_error("parameter 'sigma' expects a number in %[0%.01, 100%], got %-1", monge.operator, "gaussian_blur", { sigma = -1 })
expect_error("parameter 'size' expects an integer, got number 2%.5", monge.operator, "gaussian_blur", { size = 2.5 })
expect_error("must be odd", monge.operator, "gaussian_blur", { size = 12 })
expect_error("plugin 'gaussian' is a noise, not a operator", monge.operator, "gaussian", {})
expect_error("unknown plugin 'gausian_blur' %(did you mean 'gaussian_blur'%?%)", monge.operator, "gausian_blur")
expect_error("parameters must be a table", monge.operator, "identity", 3)
expect_error("operator 'gaussian_blur' has no field 'forwrd' %(did you mean 'forward'%?%)", function() return A.forwrd end)

-- A C++ exception inside a plugin surfaces as a Lua error with the real message, catchable by pcall.
local D = monge.operator("downsample", { factor = 2 })
err = expect_error(here .. "%d+: .*downsample", function() return D:forward(monge.zeros { 1, 1, 5, 5 }) end)
assert(not err:find("C++ exception", 1, true), err)

-- Operator methods.
local x = monge.rand({ 2, 1, 8, 8 }, { seed = 1 }) * 2 - 1
assert(table.concat(D:forward(x):shape(), ",") == "2,1,4,4")
assert(table.concat(D:lift(D:forward(x)):shape(), ",") == "2,1,8,8")
assert(D:scale_factor() == 2 and D:lipschitz() == 0.5)
assert(table.concat(D:measurement_shape { 2, 1, 8, 8 }, ",") == "2,1,4,4")
assert(A(x):allclose(A:forward(x)), "op(x) is op:forward(x)")

-- Noise: seeded samples reproduce, NLL per sample.
local n = monge.noise("gaussian", { sigma = 0.1 })
local y1, y2, y3 = n:sample(x, 5), n:sample(x, 5), n:sample(x, 6)
assert(y1:equal(y2) and not y1:equal(y3))
local nll = n:nll(y1, x)
assert(table.concat(nll:shape(), ",") == "2")
local by_hand = ((y1 - x):pow(2) / (2 * 0.01)):sum(-1):sum(-1):sum(-1) + 64 * 0.5 * math.log(2 * math.pi * 0.01)
assert(nll:allclose(by_hand, 1e-4, 1e-3), tostring(nll) .. " vs " .. tostring(by_hand))

-- List parameters (a table of numbers) from Lua; this crashed the host before the element reads
-- used an absolute stack index.
local mix = monge.noise("mixture", { levels = { 0.025, 0.05, 0.1, 0.2 }, weights = { 4, 3, 2, 1 } })
local mp = mix:params()
assert(#mp.levels == 4 and mp.levels[4] == 0.2 and mp.weights[1] == 4, tostring(mix))
assert(mix:sample(x, 1):equal(mix:sample(x, 1)))
expect_error("parameter 'levels': tables are accepted only as lists of numbers", monge.noise, "mixture", { levels = { "a" } })

-- A Lua-defined operator is used wherever an operator is accepted, with autograd through it.
local L = monge.operator { name = "halve", forward = function(t) return t * 0.5 end, lipschitz = 0.5 }
assert(L.kind == "operator" and L:lipschitz() == 0.5)
local xg = x:clone():requires_grad(true)
L:forward(xg):sum():backward()
assert(xg.grad:allclose(monge.full({ 2, 1, 8, 8 }, 0.5)))
expect_error("field 'forward' %(a function%) is required", monge.operator, { lift = function(t) return t end })
expect_error("unknown option 'forwad' %(did you mean 'forward'%?%)", monge.operator, { forwad = function(t) return t end })
-- Errors inside the Lua function carry its own file:line.
local bad = monge.operator { forward = function(t) error("broken operator") end }
expect_error(here .. "%d+: broken operator", function() return bad:forward(x) end)
local wrong = monge.operator { forward = function(t) return 3 end }
expect_error("operator forward must return a tensor, got number", function() return wrong:forward(x) end)

-- Costs defined in Lua, and weighted sums of costs.
local quad = monge.cost(function(yy, xx) return (xx - yy):pow(2):sum(-1):sum(-1):sum(-1) end, "quad")
local fid = monge.cost { name = "fidelity", evaluate = function(yy, xx) return (A(xx) - yy):pow(2):sum(-1):sum(-1):sum(-1) end }
local total = 0.5 * quad + fid * 2
assert(total.kind == "cost")
local xa = monge.randn({ 3, 1, 8, 8 }, { seed = 2 })
local ya = monge.randn({ 3, 1, 8, 8 }, { seed = 3 })
local expected = quad(ya, xa) * 0.5 + fid(ya, xa) * 2
assert(total:evaluate(ya, xa):allclose(expected, 1e-5, 1e-4))
expect_error("one value per sample", function()
  return monge.cost(function(yy, xx) return xx:sum() end):evaluate(ya, xa)
end)
expect_error("costs can only be multiplied by numbers", function() return quad * quad end)

-- Metrics: per-image scores, aggregates and calls, the same numbers as monge.metrics (one
-- implementation), closed forms and errors. Agreement with scikit-image is checked against stored
-- fixtures by tests/plugins/metrics_test.cpp.
local function close(a, b, tol) return math.abs(a - b) <= tol end

local psnr, ssim = monge.metric("psnr"), monge.metric("ssim")
assert(psnr.kind == "metric" and psnr.name == "psnr" and ssim.kind == "metric", tostring(psnr))
assert(psnr:higher_is_better() == true and ssim:higher_is_better() == true)
assert(next(psnr:params()) == nil, "psnr takes no parameters")
expect_error("unknown parameter 'data_range'", monge.metric, "psnr", { data_range = 2 })
expect_error("plugin 'psnr' is a metric, not a noise", monge.noise, "psnr")

-- Per image, aggregate and call, against the host's monge.metrics (the same implementation).
local clean = monge.rand({ 3, 2, 16, 20 }, { seed = 1 }) * 2 - 1
local noisy = monge.clamp(clean + 0.1 * monge.randn({ 3, 2, 16, 20 }, { seed = 2 }), -1, 1)
for _, m in ipairs { { psnr, monge.metrics.psnr }, { ssim, monge.metrics.ssim } } do
  local metric, host = m[1], m[2]
  local per_image = metric:per_image(noisy, clean)
  assert(table.concat(per_image:shape(), ",") == "3", tostring(per_image))
  local aggregate = metric:aggregate(per_image)
  assert(type(aggregate) == "number")
  assert(close(aggregate, per_image:mean():item(), 1e-12))
  assert(close(metric(noisy, clean), aggregate, 1e-12), "m(a, b) is m:aggregate(m:per_image(a, b))")
  assert(close(host(noisy, clean), aggregate, 1e-12), metric.name .. " differs from monge.metrics")
end

-- Closed forms: constant images 0 and -0.5 are 0.5 and 0.25 on [0, 1].
local a, b = monge.zeros { 2, 1, 11, 11 }, monge.full({ 2, 1, 11, 11 }, -0.5)
assert(close(psnr(a, b), -10 * math.log10(0.0625), 1e-9), psnr(a, b))
local c1 = 1e-4
assert(close(ssim(a, b), (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1), 1e-9), ssim(a, b))
-- Identical images: SSIM 1, PSNR at its 120 dB floor (MSE floored at 1e-12).
assert(close(ssim(noisy, noisy), 1, 1e-12) and close(psnr(noisy, noisy), 120, 1e-9), psnr(noisy, noisy))

-- Errors carry this file:line and say what was wrong.
expect_error(here .. "%d+: psnr: expected two N x C x H x W batches of the same shape, got %[2, 1, 11, 11%] and %[3, 2, 16, 20%]",
             function() return psnr:per_image(a, clean) end)
expect_error("ssim: images must be at least 11 x 11 %(the Gaussian window%), got 8 x 8",
             function() return ssim(monge.zeros { 1, 1, 8, 8 }, monge.zeros { 1, 1, 8, 8 }) end)
expect_error("metric 'ssim' has no field 'per_imag' %(did you mean 'per_image'%?%)", function() return ssim.per_imag end)

-- Plugin objects as parameters are type-checked by kind (object parameters of later plugins).
print("plugins_test: ok")
