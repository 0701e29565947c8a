-- The classical baseline of the benchmarks: the best linear (FIR Wiener) filter from the lifted
-- measurement Q(y) to the clean signal x, fitted by least squares on training pairs.
--
--   local wiener = require "monge.wiener"
--   local f = wiener.fit { degraded = A:lift(y), clean = x, size = 15, ridge = 1e-4 }
--   local restored = f:apply(A:lift(y_test))            -- clamped to [-1, 1]
--
-- The filter is one size x size kernel plus a bias, shared by every channel (images are
-- filtered channel by channel, with reflect padding). Fitting solves the normal equations
--   (P'P / n + ridge I) w = P'x / n
-- where the rows of P are the size x size patches of Q(y) (and a 1 for the bias), by conjugate
-- gradients in float64: exact up to 1e-10 of the residual. Patches come from a convolution with a
-- bank of one-hot kernels, so no unfold is needed; `pixels` bounds how many training pixels are
-- used (taken from the first images).
local monge = require "monge"
local M = {}

local Filter = {}
Filter.__index = Filter

local function patches(q, size)
  local r = math.floor(size / 2)
  local n, c, h, w = q:size(1), q:size(2), q:size(3), q:size(4)
  local k2 = size * size
  -- One-hot kernels: kernel j picks the j-th position of the window.
  local eye = monge.arange(0, k2):view { k2, 1 }:eq(monge.arange(0, k2):view { 1, k2 }):to("float64")
  local x = q:to("float64"):reshape { n * c, 1, h, w }:pad({ r, r, r, r }, "reflect")
  local p = monge.conv2d(x, eye:reshape { k2, 1, size, size })      -- (n c) x k2 x h x w
  return p:permute { 1, 3, 4, 2 }:reshape { n * c * h * w, k2 }
end

-- Solves (G + lambda I) w = b for a symmetric positive definite G by conjugate gradients.
local function solve(G, b, lambda)
  local n = G:size(1)
  local function mul(v) return monge.matmul(G, v) + v * lambda end
  local w = monge.zeros({ n, 1 }, { dtype = "float64" })
  local r = b - mul(w)
  local p = r:clone()
  local rr = (r * r):sum():item()
  local bb = (b * b):sum():item()
  for _ = 1, 4 * n do
    if rr <= 1e-20 * bb then break end
    local Ap = mul(p)
    local alpha = rr / (p * Ap):sum():item()
    w = w + p * alpha
    r = r - Ap * alpha
    local rr_new = (r * r):sum():item()
    p = r + p * (rr_new / rr)
    rr = rr_new
  end
  return w
end

--- Fits the filter. `degraded` and `clean`: N x C x H x W pairs in [-1, 1] of the same shape.
--- Options: size (odd, default 15), ridge (default 1e-4, relative to the mean patch energy),
--- pixels (default 100000).
function M.fit(o)
  local q, x = assert(o.degraded, "wiener.fit: 'degraded' is required"), assert(o.clean, "wiener.fit: 'clean' is required")
  local size = o.size or 15
  assert(size % 2 == 1 and size >= 1, "wiener.fit: 'size' must be an odd positive number")
  assert(q:dim() == 4 and q:size(1) == x:size(1) and q:numel() == x:numel(),
    "wiener.fit: 'degraded' and 'clean' must be N x C x H x W batches of the same shape")
  local per_image = q:size(2) * q:size(3) * q:size(4)
  local images = math.max(1, math.min(q:size(1), math.floor((o.pixels or 100000) / per_image)))
  q, x = q:narrow(1, 1, images), x:narrow(1, 1, images)
  local P = patches(q, size)
  local rows = P:size(1)
  P = monge.cat({ P, monge.ones({ rows, 1 }, { dtype = "float64" }) }, 2)
  local t = x:to("float64"):reshape { rows, 1 }
  local G = monge.matmul(P:transpose(1, 2), P) / rows
  local b = monge.matmul(P:transpose(1, 2), t) / rows
  local lambda = (o.ridge or 1e-4) * (P * P):sum():item() / rows / (size * size + 1)
  local w = solve(G, b, lambda)
  local k2 = size * size
  return setmetatable({
    size = size,
    kernel = w:narrow(1, 1, k2):reshape { 1, 1, size, size }:to("float32"),
    bias = w[k2 + 1]:item(),
  }, Filter)
end

--- Filters lifted measurements (N x C x H x W), channel by channel; clamped to [-1, 1].
function Filter:apply(q)
  local n, c, h, w = q:size(1), q:size(2), q:size(3), q:size(4)
  local r = math.floor(self.size / 2)
  local x = q:to("float32"):reshape { n * c, 1, h, w }:pad({ r, r, r, r }, "reflect")
  return (monge.conv2d(x, self.kernel) + self.bias):reshape { n, c, h, w }:clamp(-1, 1)
end

return M
