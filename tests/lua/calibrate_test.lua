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

-- Real photographs (PHOTO-IP's protocol: 25 random 64x64 RGB crops of each of Debian's 12
-- mate-backgrounds photos, a seeded half clean and the other half measured): PHOTO-IP's blur
-- (25x25, sigma 2.0, reflect padding) and noise (0.05) are recovered within 5% as well (measured:
-- sigma 1.925, -3.8%; noise -0.05%; with 200 crops per photo the blur came out +4.2%: on photos
-- the error is a bias of the spectrum match, not sampling noise).
local photo_files = {}
for f in io.popen("ls /usr/share/backgrounds/mate/nature/*.jpg 2>/dev/null"):lines() do photo_files[#photo_files + 1] = f end
assert(#photo_files >= 4, "the photographs of mate-backgrounds are missing (scripts/install-deps.sh installs them)")
local crops = monge.data.images { files = photo_files, size = { 64, 64 }, crops = 25, channels = 3, seed = 5 }
local halves = monge.data.split(crops.count, { 0.5, 0.5 }, 6)
local photo_clean, photo_other = crops.images:index_select(1, halves[1]), crops.images:index_select(1, halves[2])
local photo_blur = monge.operator("gaussian_blur", { size = 25, sigma = 2.0, padding = "reflect" })
local photo_measured = monge.noise("gaussian", { sigma = 0.05 }):sample(photo_blur(photo_other), 12)
local pc = monge.calibrate { clean = photo_clean, measured = photo_measured, operator = "gaussian_blur",
                             params = { size = 25, padding = "reflect" }, parameter = "sigma", range = { 0.3, 5 }, iterations = 18 }
print(string.format("photos: blur 2.00 -> %.3f (%+.2f%%), noise 0.050 -> %.4f (%+.2f%%)", pc.value, 100 * (pc.value / 2 - 1),
  pc.noise_sigma, 100 * (pc.noise_sigma / 0.05 - 1)))
assert(math.abs(pc.value / 2 - 1) < 0.05, "the photos' blur sigma should be recovered within 5%")
assert(math.abs(pc.noise_sigma / 0.05 - 1) < 0.05, "the photos' noise sigma should be recovered within 5%")

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
fails(function() monge.calibrate(with("images", 0)) end, "monge.calibrate: parameter 'images' expects an integer in [1, ")
fails(function() monge.calibrate(with("operator", nil)) end, "parameter 'operator' is required")
fails(function() monge.calibrate(with("clean", 3)) end, "must be tensors")
fails(function() monge.calibrate(with("parameter", nil)) end, "'parameter'")
fails(function() monge.calibrate(with("measured", down)) end, "gives 28x28 measurements of the clean images, the measured set is 14x14")
print("ok")
