-- The out-of-tree gamma_curve plugin and its Lua twin give the same values and gradients.
local monge = require "monge"

local found
for _, p in ipairs(monge.plugins()) do
  if p.name == "gamma_curve" then found = p end
end
assert(found, "gamma_curve not found through MONGE_PLUGIN_PATH")
assert(found.kind == "operator", found.kind)
assert(found.file:find("example_custom_operator/gamma_curve.monge.so", 1, true), found.file)

for _, gamma in ipairs { 0.5, 1.0, 2.2 } do
  local cpp = monge.operator("gamma_curve", { gamma = gamma })
  local lua = monge.operator {
    name = "gamma_curve_lua",
    forward = function(x) return ((x + 1) / 2):clamp(0, 1):pow(gamma) * 2 - 1 end,
  }
  -- Inputs away from -1, where t^gamma has an unbounded slope for gamma < 1.
  local x = (monge.rand({ 3, 2, 7, 5 }, { seed = 7 }) * 1.8 - 0.8):double()
  local w = monge.randn({ 3, 2, 7, 5 }, { seed = 8 }):double()
  local x1 = x:clone():requires_grad(true)
  local x2 = x:clone():requires_grad(true)
  local y1, y2 = cpp:forward(x1), lua:forward(x2)
  assert(y1:allclose(y2, 1e-12, 1e-12), "values differ for gamma " .. gamma)
  ;(y1 * w):sum():backward()
  ;(y2 * w):sum():backward()
  assert(x1.grad:allclose(x2.grad, 1e-10, 1e-12), "gradients differ for gamma " .. gamma)
  assert((x1.grad - x2.grad):abs():max():item() < 1e-10)
end

-- Range checking from the plugin's schema.
local ok, err = pcall(monge.operator, "gamma_curve", { gamma = 0 })
assert(not ok and err:find("parameter 'gamma' expects a number in %[0%.1, 10%], got 0"), err)
print("gamma_curve plugin matches its Lua twin")
