-- Calibration from unpaired data (monge.calibrate): on Fashion-MNIST, clean images (even indices)
-- and measurements of other images (odd indices) blurred with sigma 1.0, 1.5 or 2.5 and noisy with
-- sigma 0.02, 0.05 or 0.1, it recovers both within 5%, never seeing a pair; the downsampling
-- factor comes from the shapes; bad options are refused with a message that says what to do.
local monge = require "monge"
local calibrate = require "monge.calibrate"
monge.set_threads(2)

local train = monge.data.fashion_mnist { split = "train", limit = 2000 }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local others = train.images:index_select(1, monge.arange(1, train.count, 2):long())

local worst_blur, worst_noise = 0, 0
for _, blur in ipairs { 1.0, 1.5, 2.5 } do
  for _, sigma in ipairs { 0.02, 0.05, 0.1 } do
    local A = monge.operator("gaussian_blur", { size = 13, sigma = blur })
    local measured = monge.noise("gaussian", { sigma = sigma }):sample(A(others), 11)
    local c = monge.calibrate { clean = clean, measured = measured, operator = "gaussian_blur", params = { size = 13 },
                                parameter = "sigma", range = { 0.3, 5 }, images = 1000, iterations = 18 }
    local eb, en = math.abs(c.value / blur - 1), math.abs(c.noise_sigma / sigma - 1)
    print(string.format("blur %.2f -> %.3f (%+.2f%%), noise %.3f -> %.4f (%+.2f%%)", blur, c.value, 100 * (c.value / blur - 1), sigma,
      c.noise_sigma, 100 * (c.noise_sigma / sigma - 1)))
    assert(eb < 0.05, "the blur's sigma should be recovered within 5%")
    assert(en < 0.05, "the noise's sigma should be recovered within 5%")
    assert(c.operator:lipschitz() ~= nil and #c.evaluations > 10)
    worst_blur, worst_noise = math.max(worst_blur, eb), math.max(worst_noise, en)
  end
end
print(string.format("worst relative errors: blur %.2f%%, noise %.2f%%", 100 * worst_blur, 100 * worst_noise))

-- The downsampling factor is the ratio of the sizes.
local down = monge.operator("downsample", { factor = 2 })(others)
assert(calibrate.factor_from_shapes(clean, down) == 2)
assert(not pcall(calibrate.factor_from_shapes, clean, down:narrow(3, 1, 13)))

local function fails(f, part)
  local ok, err = pcall(f)
  assert(not ok and tostring(err):find(part, 1, true), "expected an error with '" .. part .. "', got " .. tostring(err))
end
local base = { clean = clean, measured = clean, operator = "gaussian_blur", parameter = "sigma", range = { 0.3, 5 } }
local function with(k, v)
  local t = {}
  for key, value in pairs(base) do t[key] = value end
  t[k] = v
  return t
end
fails(function() monge.calibrate(with("range", { 5, 0.3 })) end, "lo < hi")
fails(function() monge.calibrate(with("sigma", 1)) end, "unknown option 'sigma'")
fails(function() monge.calibrate(with("clean", 3)) end, "must be tensors")
fails(function() monge.calibrate(with("parameter", nil)) end, "'parameter'")
fails(function() monge.calibrate(with("measured", down)) end, "gives 28x28 measurements of the clean images, the measured set is 14x14")
print("ok")
