-- The Wiener baseline (monge.wiener): the least-squares linear filter recovers a known filter
-- exactly, and on Fashion-MNIST deblurring it beats the degraded input.
local monge = require "monge"
local wiener = require "monge.wiener"
monge.set_threads(1)

-- Known answer: when "clean" is the degraded image filtered by a 5 x 5 kernel (reflect padding)
-- plus 0.1, the fitted 5 x 5 filter is that kernel and the bias 0.1.
local q = monge.rand({ 20, 1, 24, 24 }, { seed = 5 }) * 2 - 1
local k = monge.rand({ 1, 1, 5, 5 }, { seed = 6 }) - 0.3
local target = monge.conv2d(q:pad({ 2, 2, 2, 2 }, "reflect"), k) + 0.1
local f = wiener.fit { degraded = q, clean = target, size = 5, ridge = 0 }
local err = (f.kernel - k):abs():max():item()
print(string.format("known filter recovered to %.2g, bias %.6f", err, f.bias))
assert(err < 1e-4, "the fitted kernel should equal the known one")
assert(math.abs(f.bias - 0.1) < 1e-4, "the fitted bias should be 0.1")
local unclamped = monge.conv2d(q:pad({ 2, 2, 2, 2 }, "reflect"), f.kernel) + f.bias
assert((unclamped - target):abs():max():item() < 1e-4)

-- Deblurring: fitted on 500 training pairs, scored on 200 test images.
local train = monge.data.fashion_mnist { split = "train", limit = 500 }.images
local test = monge.data.fashion_mnist { split = "test", limit = 200 }.images
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local filter = wiener.fit { degraded = A:lift(noise:sample(A(train), 1)), clean = train, size = 15 }
local degraded = A:lift(noise:sample(A(test), 0)):clamp(-1, 1)
local p_deg = monge.metrics.psnr(degraded, test)
local p_wiener = monge.metrics.psnr(filter:apply(degraded), test)
print(string.format("GB: degraded %.2f dB, Wiener %.2f dB", p_deg, p_wiener))
assert(p_wiener > p_deg + 1.0, "the Wiener filter should beat the degraded input by 1 dB")

-- Bad input is a clear error.
local ok, msg = pcall(wiener.fit, { degraded = q, clean = target, size = 4 })
assert(not ok and msg:find("'size' must be an odd positive number"), msg)
print("ok")
