-- Uses the out-of-tree gamma_curve operator (found through MONGE_PLUGIN_PATH) on Fashion-MNIST.
--   MONGE_PLUGIN_PATH=examples/custom_operator/build monge run examples/custom_operator/use_gamma_curve.lua
local monge = require "monge"

local A = monge.operator("gamma_curve", { gamma = 2.2 })
local x = monge.data.fashion_mnist { split = "test", limit = 4 }.images
local y = A:forward(x)
print(string.format("%s: mean %.4f -> %.4f, Lipschitz bound %s", tostring(A), x:mean():item(), y:mean():item(),
                    tostring(A:lipschitz())))
