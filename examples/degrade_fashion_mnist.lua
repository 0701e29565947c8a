-- Demo pipeline: degrades real Fashion-MNIST test images with the forward operators of the
-- FMNIST-IP benchmark (blur, 2x downsampling, HDR clipping, each plus Gaussian noise) and writes
-- a PNG grid: first row clean, then one row per task (the lifted measurement Q(y)).
--
--   monge run examples/degrade_fashion_mnist.lua [OUT_DIR] [N_IMAGES]
local monge = require "monge"

local out_dir = arg[1] or "."
local n = tonumber(arg[2] or "16")
assert(n and n >= 1 and n <= 10000, "N_IMAGES must be a number between 1 and 10000")

-- PSNR on the [0, 1] scale of images stored in [-1, 1].
local function psnr(a, b)
  local mse = ((a - b) / 2):pow(2):mean():item()
  return 10 * math.log10(1 / mse)
end

local fm = monge.data.fashion_mnist { split = "test", limit = n }
local x = fm.images
print(string.format("loaded %d Fashion-MNIST test images, shape %s", fm.count, table.concat(x:shape(), "x")))

local noise = monge.noise("gaussian", { sigma = 0.05 })
local tasks = {
  { "GB   gaussian_blur 13x13 sigma 1.5", monge.operator("gaussian_blur", { size = 13, sigma = 1.5 }) },
  { "SR   downsample x2 (bicubic lift)", monge.operator("downsample", { factor = 2 }) },
  { "HDR  hdr_clip scale 2", monge.operator("hdr_clip", { scale = 2 }) },
}

local rows = { x }
print(string.format("%-36s %9s %10s", "task (+ gaussian noise 0.05)", "PSNR (dB)", "Lipschitz"))
for i, task in ipairs(tasks) do
  local name, A = task[1], task[2]
  local y = noise:sample(A:forward(x), i)   -- seeded: the same degraded images every run
  local q = A:lift(y):clamp(-1, 1)
  rows[#rows + 1] = q
  print(string.format("%-36s %9.2f %10s", name, psnr(q, x), string.format("%.3g", A:lipschitz())))
end

local grid = monge.image.grid(monge.cat(rows, 1), { nrow = n, padding = 2, pad_value = 1 })
local path = out_dir .. "/degraded.png"
monge.image.save(grid, path)
print("wrote " .. path .. " (rows: clean, GB, SR, HDR)")
