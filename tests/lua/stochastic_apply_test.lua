-- Streaming apply of a stochastic map (OTP: measurements smoothed at each call): seeds reproduce,
-- `samples` averages K restorations (the mean of 16 varies about 4 times less between seeds than
-- one sample does), `reduce = "std"` maps the spread, and deterministic maps refuse both. Leaves
-- DIR/stochastic_apply/{map.pt, blurred.png, deterministic.pt} for the `monge apply --samples`
-- CLI checks.
local monge = require "monge"
local out = (arg[1] or ".") .. "/stochastic_apply"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
monge.set_threads(1)

local data = monge.data.fashion_mnist { split = "train", limit = 64 }
local A = monge.operator("gaussian_blur", { size = 7, sigma = 1.0, padding = "reflect" })
local function learn(name, solver, iters)
  local run = monge.train {
    operator = A, clean = data.images:narrow(1, 1, 32), measured = data.images:narrow(1, 33, 32),
    map = monge.network("unet", { channels = 4, depth = 1 }), potential = monge.network("potential", { channels = 4, depth = 2 }),
    solver = solver, cost = monge.cost("quadratic", { operator = A }), iters = iters or 3, batch = 8,
    out = out .. "/" .. name, progress = false,
  }
  os.rename(out .. "/" .. name .. "/map.pt", out .. "/" .. name .. ".pt")
  return out .. "/" .. name .. ".pt"
end
local map = learn("map", monge.solver("otp", { smoothing = 0.5, smoothing_min = 0.2 }))
-- A latent map trained fast enough (high rate) that its output depends on z.
local latent = learn("latent", monge.solver("knot", { latent = 1, gamma = 1, k_t = 1, lr_map = 0.01, gamma_ramp = 0 }), 20)
local deterministic = learn("deterministic", monge.solver("uotip", {}))
-- Trained without a noise model: the file says so (monge eval then degrades without noise).
assert(monge.load_map(map).noise == "none", "noise record: " .. tostring(monge.load_map(map).noise))

-- A 3 x 2 mosaic of blurred test images (84 x 56), written as an 8-bit PNG.
local x = monge.data.fashion_mnist { split = "test", limit = 6 }.images
local y = A(x):clamp(-1, 1)
local rows = {}
for r = 0, 2 do rows[#rows + 1] = monge.cat({ y[2 * r + 1], y[2 * r + 2] }, 3) end
local mosaic = monge.cat(rows, 2)
local input = out .. "/blurred.png"
monge.image.save(mosaic, input)

local function apply(name, options)
  options.map, options.input, options.output, options.device, options.tile = map, input, out .. "/" .. name .. ".png", "cpu", 32
  options.precision = "fp32"  -- the seeds' effects are measured against fp32 rounding
  monge.apply(options)
  return monge.image.load(options.output):double()
end
local a = apply("seed3", { seed = 3 })
local b = apply("seed3_again", { seed = 3 })
local c = apply("seed4", { seed = 4 })
assert(a:equal(b), "the same seed gave another restoration")
local single = (a - c):abs():mean():item()
assert(single > 0, "two seeds gave the same restoration: the map is not stochastic")
local m3 = apply("mean3", { seed = 3, samples = 16 })
local m4 = apply("mean4", { seed = 4, samples = 16 })
local averaged = (m3 - m4):abs():mean():item()
print(string.format("stochastic_apply_test: mean |difference| between seeds: one sample %.4f, mean of 16 %.4f (ratio %.2f)",
  single, averaged, single / averaged))
assert(single / averaged > 2.5, "the mean of 16 samples does not average the noise out: ratio " .. single / averaged)
local sd = apply("std", { seed = 3, samples = 8, reduce = "std" })
local spread = ((sd + 1) / 2):mean():item()
print(string.format("stochastic_apply_test: mean pixel standard deviation over 8 samples %.4f", spread))
assert(spread > 0.002, "the std image is black: " .. spread)
local one = apply("std1", { seed = 3, samples = 1, reduce = "std" })
assert(one:max():item() == -1, "the std of one sample must be 0 everywhere")

-- The noise is drawn by position, so tiles agree: 32-pixel tiles give the whole-image result
-- (one 96-pixel tile) up to float rounding, for smoothed and latent maps alike, while another
-- seed differs everywhere.
-- (The knot map was trained briefly: z moves its output by about 1e-3, still 20 times a 16-bit step.)
for _, case in ipairs({ { "otp", map, 0.01 }, { "knot", latent, 2e-4 } }) do
  local function tiled(tile, seed)
    local o = out .. "/" .. case[1] .. "_" .. tile .. "_" .. seed .. ".png"
    monge.apply { map = case[2], input = input, output = o, device = "cpu", tile = tile, seed = seed, depth = "16", precision = "fp32" }
    return monge.image.load(o):double()
  end
  local small, whole, other = tiled(32, 5), tiled(96, 5), tiled(96, 6)
  local gap, seeds = (small - whole):abs():max():item(), (whole - other):abs():mean():item()
  print(string.format("stochastic_apply_test: %s: 32-pixel tiles vs one tile: max |difference| %.2e; another seed: mean %.4f",
    case[1], gap, seeds))
  assert(gap < 1e-3, case[1] .. ": tiles disagree with the whole image: " .. gap)
  assert(seeds > case[3], case[1] .. ": another seed gave nearly the same image: " .. seeds)
end

local function fails(options, pattern)
  local ok, err = pcall(monge.apply, options)
  assert(not ok and tostring(err):find(pattern), "expected an error matching '" .. pattern .. "', got " .. tostring(err))
end
local never = out .. "/never.png"
fails({ map = deterministic, input = input, output = never, samples = 2 }, "needs a stochastic map")
fails({ map = deterministic, input = input, output = never, seed = 1 }, "this map is deterministic")
fails({ map = map, input = input, output = never, samples = 2, reduce = "median" }, "parameter 'reduce' expects one of mean|std|all")
local f = io.open(never)
assert(not f, "a failed apply left " .. never .. " behind")
print("stochastic_apply_test: ok")
