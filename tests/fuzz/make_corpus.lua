-- Writes the seed files of tests/fuzz/corpus/ that monge itself makes: three tiny maps (unet with
-- 4 channels and depth 1, one iteration: the gaussian_blur operator, a Wiener lift and a fitted
-- lift, kind "fitted") and small
-- images (8-bit RGB and grey PNG, 16-bit PNG, JPEG, 8- and 16-bit TIFF, float TIFF).
--   monge --no-env-plugins run tests/fuzz/make_corpus.lua WORKDIR CORPUSDIR
local monge = require "monge"
local work, corpus = arg[1], arg[2]
os.execute("rm -rf '" .. work .. "' && mkdir -p '" .. work .. "'")
monge.set_threads(1)

local fm = monge.data.fashion_mnist { split = "train", limit = 32 }
local clean = fm.images:narrow(1, 1, 16)
local measured = fm.images:narrow(1, 17, 16)
local A = monge.operator("gaussian_blur", { size = 3, sigma = 0.8 })
local function train(dir, op)
  return monge.train {
    operator = op, noise = monge.noise("gaussian", { sigma = 0.05 }), clean = clean, measured = measured,
    map = monge.network("unet", { channels = 4, depth = 1 }),
    potential = monge.network("potential", { channels = 4, depth = 1 }),
    solver = monge.solver("uotip", {}), cost = monge.cost("quadratic", { operator = op }),
    iters = 1, batch = 4, seed = 1, out = work .. "/" .. dir, progress = false,
  }
end
train("blur", A)
train("wiener", monge.wiener { operator = A, clean = clean, noise_variance = 0.0025, max_radius = 3 })
local N = monge.noise("gaussian", { sigma = 0.05 })
train("fitted", monge.fitted_lift { operator = A, clean = clean, noise = N, size = 3, pixels = 2000 })
local function copy(from, to)
  local i = assert(io.open(from, "rb"))
  local o = assert(io.open(to, "wb"))
  o:write(i:read("*a"))
  i:close()
  o:close()
end
for _, h in ipairs { "tensor_file", "map" } do
  copy(work .. "/blur/map.pt", corpus .. "/" .. h .. "/unet_gaussian_blur.map")
  copy(work .. "/wiener/map.pt", corpus .. "/" .. h .. "/unet_wiener_lift.map")
  copy(work .. "/fitted/map.pt", corpus .. "/" .. h .. "/unet_fitted_lift.map")
end

local x = monge.rand({ 3, 12, 16 }, { seed = 5 }) * 2 - 1
local g = corpus .. "/image/"
monge.image.save(x, g .. "rgb8.png")
monge.image.save(x:narrow(1, 1, 1), g .. "grey8.png")
monge.image.save(x, g .. "rgb16.png", { bits = 16 })
monge.image.save(x, g .. "rgb.jpg")
monge.image.save(x:narrow(1, 1, 1), g .. "grey.jpg")
monge.image.save(x, g .. "rgb8.tif")
monge.image.save(x, g .. "rgb16.tif", { bits = 16 })
monge.image.save(x:narrow(1, 1, 1), g .. "grey_float.tif", { bits = 32 })
print("make_corpus: written under " .. corpus)
