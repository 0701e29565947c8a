-- Tensors from Lua: construction, shapes, arithmetic, 1-based indexing, reductions, autograd,
-- nn-style functions, and the errors users see (with this script's file:line).
local monge = require "monge"

local function expect_error(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
  return err
end

local function same(list, expected)
  return table.concat(list, ",") == table.concat(expected, ",")
end

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-6) end

-- This script's file name as a Lua pattern ("tensor_test%.lua"): errors must start with it.
local here = debug.getinfo(1, "S").short_src:match("[^/]+$"):gsub("%p", "%%%0")

-- Construction from nested tables, and back.
local m = monge.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
assert(monge.is_tensor(m) and not monge.is_tensor({}) and not monge.is_tensor(3))
assert(same(m:shape(), { 2, 3 }) and m:dim() == 2 and m:numel() == 6 and #m == 2)
assert(m:size(1) == 2 and m:size(-1) == 3 and same(m:size(), { 2, 3 }))
assert(m:dtype() == "float32" and m:device() == "cpu")
local list = m:tolist()
assert(#list == 2 and same(list[1], { 1, 2, 3 }) and same(list[2], { 4, 5, 6 }))
assert(monge.tensor(list):equal(m), "tolist round trip")
assert(monge.tensor({ 1, 2 }, { dtype = "int64" }):dtype() == "int64")
assert(monge.tensor({ true, false }):dtype() == "bool")
assert(monge.tensor(2.5):dim() == 0 and monge.tensor(2.5):item() == 2.5)
assert(monge.tensor({ { 1.5 } }, { dtype = "float64" }):double():item() == 1.5)
assert(tostring(m):find("tensor(float32, [2, 3], cpu)", 1, true), tostring(m))
assert(tostring(monge.tensor { 1, 2 }):find("[1, 2]", 1, true), tostring(monge.tensor { 1, 2 }))
assert(same(monge.zeros { 2, 3 }:shape(), { 2, 3 }) and same(monge.ones(4, 1):shape(), { 4, 1 }))
assert(monge.zeros({ 2 }, { dtype = "float64" }):dtype() == "float64")
assert(monge.full({ 2, 2 }, 7):sum():item() == 28)
assert(same(monge.arange(4):tolist(), { 0, 1, 2, 3 }) and monge.arange(4):dtype() == "int64")
assert(same(monge.arange(1, 2, 0.25):tolist(), { 1, 1.25, 1.5, 1.75 }))
assert(same(monge.linspace(0, 1, 5):tolist(), { 0, 0.25, 0.5, 0.75, 1 }))
assert(same(monge.cat({ m, m }, 1):shape(), { 4, 3 }) and same(monge.cat({ m, m }, -1):shape(), { 2, 6 }))
assert(same(monge.stack({ m, m }, 1):shape(), { 2, 2, 3 }))
assert(m:to("float64"):dtype() == "float64" and m:to(monge.tensor(1, { dtype = "int64" })):dtype() == "int64")

-- Arithmetic: broadcasting, numbers on either side, dtype kept for numbers.
local row = monge.tensor { 10, 20, 30 }
assert((m + row):equal(monge.tensor { { 11, 22, 33 }, { 14, 25, 36 } }))
assert((m * 2):equal(2 * m) and (m * 2)[2][3]:item() == 12)
assert((1 - m):equal(monge.tensor { { 0, -1, -2 }, { -3, -4, -5 } }))
assert((m / 2)[1][1]:item() == 0.5 and (6 / m)[1][3]:item() == 2)
assert((-m)[2][1]:item() == -4 and (m ^ 2)[2][2]:item() == 25 and (2 ^ m)[1][3]:item() == 8)
assert((m:double() * 0.5):dtype() == "float64", "numbers take the tensor's dtype")
assert((monge.arange(3) * 2):dtype() == "int64" and (monge.arange(3) * 0.5):dtype() == "float32")
assert(m:gt(3):dtype() == "bool" and m:gt(3):sum():item() == 3 and m:eq(row / 10):sum():item() == 3)
assert(monge.where(m:gt(3), m, 0):sum():item() == 15)
assert(m:clamp(2, 5):min():item() == 2 and m:clamp(2, 5):max():item() == 5)
assert(m:pow(2):equal(m * m) and monge.exp(monge.zeros(2)):equal(monge.ones(2)))
assert(close(monge.tensor({ 0 }):sigmoid():item(), 0.5) and close(monge.tensor({ 0 }):softplus():item(), math.log(2)))
assert(same(monge.matmul(m, m:transpose(1, 2)):shape(), { 2, 2 }) and monge.matmul(m, m:transpose(1, 2))[1][1]:item() == 14)
expect_error("must match the size", function() return m + monge.ones(2) end)
expect_error("cannot add tensor and string", function() return m + "x" end)

-- 1-based indexing, negative from the end, assignment into rows.
assert(m[1][1]:item() == 1 and m[2][3]:item() == 6 and m[-1][-1]:item() == 6 and m[-2][1]:item() == 1)
assert(m:select(2, 3):equal(monge.tensor { 3, 6 }) and m:narrow(2, 2, 2):equal(monge.tensor { { 2, 3 }, { 5, 6 } }))
assert(m:index_select(2, monge.tensor({ 2, 0 }, { dtype = "int64" })):equal(monge.tensor { { 3, 1 }, { 6, 4 } }))
assert(m:index_select(2, { 3, 1 }):equal(monge.tensor { { 3, 1 }, { 6, 4 } }))
local w = m:clone()
w[1] = 0
w[2][2] = -1
w[-1][-1] = monge.tensor(9)
assert(w:equal(monge.tensor { { 0, 0, 0 }, { 4, -1, 9 } }), tostring(w))
assert(m[1][1]:item() == 1, "clone is a copy")
-- Out of range: the message names index and size, and starts with this file:line.
local line = debug.getinfo(1, "l").currentline + 1
local err = expect_error("index 3 is out of range for dimension 1 of size 2", function() return m[3] end)
assert(err:find("^.-" .. here .. ":" .. line .. ": "), err)
expect_error("index %-4 is out of range for dimension 1 of size 3", function() return m[1][-4] end)
expect_error("index 0 is out of range .*1%-based", function() return m[0] end)
expect_error(here .. ":%d+: .*index 3 is out of range", function() w[3] = 1 end)
expect_error("tensor has no field 'shap' %(did you mean 'shape'%?%)", function() return m.shap end)

-- Shape methods.
local t = monge.arange(24):reshape { 2, 3, 4 }
assert(same(t:permute { 3, 1, 2 }:shape(), { 4, 2, 3 }) and same(t:transpose(1, -1):shape(), { 4, 3, 2 }))
assert(same(t:view(6, 4):shape(), { 6, 4 }) and same(t:reshape { -1 }:shape(), { 24 }))
assert(same(t:flatten(2):shape(), { 2, 12 }) and same(t:flatten():shape(), { 24 }))
assert(same(t:unsqueeze(1):shape(), { 1, 2, 3, 4 }) and same(t:unsqueeze(-1):shape(), { 2, 3, 4, 1 }))
assert(same(t:unsqueeze(1):squeeze(1):shape(), { 2, 3, 4 }) and same(monge.zeros(1, 3, 1):squeeze():shape(), { 3 }))
expect_error("dimension 4 is out of range for a 3%-D tensor", function() return t:sum(4) end)

-- Reductions with 1-based dims and keepdim.
local s = m:sum()
assert(s:dim() == 0 and s:item() == 21)
assert(m:sum(1):equal(monge.tensor { 5, 7, 9 }) and m:sum(2):equal(monge.tensor { 6, 15 }))
assert(same(m:sum(2, true):shape(), { 2, 1 }) and same(m:mean(-1, true):shape(), { 2, 1 }))
assert(m:mean():item() == 3.5 and m:mean(1):equal(monge.tensor { 2.5, 3.5, 4.5 }))
assert(t:float():sum { 2, 3 }:equal(t:float():sum(-1):sum(-1)))
local values, indices = m:max(2)
assert(values:equal(monge.tensor { 3, 6 }) and same(indices:tolist(), { 2, 2 }), "argmax values are 0-based")
assert(m:min():item() == 1 and m:prod():item() == 720 and m:argmax():item() == 5)
assert(same(m:argmax(1):tolist(), { 1, 1, 1 }))
assert(close(monge.tensor({ 1, 2, 3, 4 }):var():item(), 5 / 3) and close(monge.tensor({ 1, 2, 3, 4 }):std():item(), math.sqrt(5 / 3)))
assert(close(monge.tensor({ 3, 4 }):norm():item(), 5) and close(monge.tensor({ { 3, 4 } }):norm(2)[1]:item(), 5))
assert(monge.tensor({ 1, 2 }):gt(1)[2]:item() == true)

-- Autograd.
local x = monge.tensor({ 1, 2, 3 }):requires_grad(true)
assert(x:requires_grad() and x.grad == nil)
local y = (x * x):sum()
y:backward()
assert(x.grad:equal(x * 2) and x:grad():equal(x * 2))
x:zero_grad()
assert(x.grad:sum():item() == 0)
expect_error("leaf tensor that requires grad", function() x[1] = 5 end)
-- no_grad: no graph inside, results pass through, the mode comes back even after an error.
local z, extra = monge.no_grad(function(a) return a * 2, "extra" end, x)
assert(not z:requires_grad() and extra == "extra")
monge.no_grad(function() x[1] = 5 end)
assert(x[1]:item() == 5 and x:requires_grad())
expect_error(here .. ":%d+: inside no_grad", monge.no_grad, function() error("inside no_grad") end)
assert((x * 2):requires_grad(), "grad mode restored after an error")

-- Random numbers: seeded draws reproduce.
local r1, r2 = monge.randn({ 3, 4 }, { seed = 7 }), monge.randn({ 3, 4 }, { seed = 7 })
assert(r1:equal(r2) and not r1:equal(monge.randn({ 3, 4 }, { seed = 8 })))
monge.manual_seed(11)
local u1 = monge.rand(5)
monge.manual_seed(11)
assert(u1:equal(monge.rand(5)) and u1:min():item() >= 0 and u1:max():item() < 1)

-- conv2d and padding against hand-computed values.
local img = monge.tensor({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }):reshape { 1, 1, 3, 3 }
local padded = img:pad({ 1, 1, 1, 1 }, "reflect")
assert(padded[1][1]:equal(monge.tensor {
  { 5, 4, 5, 6, 5 }, { 2, 1, 2, 3, 2 }, { 5, 4, 5, 6, 5 }, { 8, 7, 8, 9, 8 }, { 5, 4, 5, 6, 5 } }), tostring(padded))
local box = monge.conv2d(padded, monge.ones(1, 1, 3, 3))
assert(box[1][1]:equal(monge.tensor { { 33, 36, 39 }, { 42, 45, 48 }, { 51, 54, 57 } }), tostring(box))
local right = monge.tensor({ { 0, 0, 0 }, { 0, 0, 1 }, { 0, 0, 0 } }):reshape { 1, 1, 3, 3 }
local shifted = monge.conv2d(padded, right, { bias = monge.tensor { 100 } })
assert(shifted[1][1]:equal(monge.tensor { { 102, 103, 102 }, { 105, 106, 105 }, { 108, 109, 108 } }), tostring(shifted))
assert(same(monge.conv2d(img, monge.ones(2, 1, 3, 3), { padding = 1, stride = 2 }):shape(), { 1, 2, 2, 2 }))
local line3 = monge.tensor({ 1, 2, 3 }):reshape { 1, 1, 1, 3 }
assert(same(line3:pad({ 1, 1, 0, 0 }, "circular"):flatten():tolist(), { 3, 1, 2, 3, 1 }))
assert(same(line3:pad({ 2, 0, 0, 0 }, "replicate"):flatten():tolist(), { 1, 1, 1, 2, 3 }))
assert(same(line3:pad({ 0, 1, 0, 0 }, "constant", 9):flatten():tolist(), { 1, 2, 3, 9 }))
expect_error("unknown mode 'reflct' %(did you mean 'reflect'%?%)", monge.pad, img, { 1, 1, 1, 1 }, "reflct")
assert(monge.avg_pool2d(padded, 5)[1][1][1][1]:item() == 5 and same(monge.avg_pool2d(padded, 2):shape(), { 1, 1, 2, 2 }))
local big = monge.interpolate(img, { size = { 6, 5 } }, "bicubic")
assert(same(big:shape(), { 1, 1, 6, 5 }) and same(img:interpolate({ scale = 2 }, "bilinear"):shape(), { 1, 1, 6, 6 }))
assert(img:interpolate({ scale = 2 }, "nearest")[1][1][2][2]:item() == 1)

-- Errors: ragged tables, wrong argument types, unknown options.
expect_error("monge%.tensor: ragged nested table: level 2 has length 1 at %[2%], but length 2 at %[1%]",
  monge.tensor, { { 1, 2 }, { 3 } })
expect_error("ragged nested table: element %[2%] is a number 3", monge.tensor, { { 1, 2 }, 3 })
expect_error("element %[1%]%[2%] must be a number or boolean, got string", monge.tensor, { { 1, "a" } })
expect_error("monge%.zeros: argument 1 must be a table of sizes or numbers, got string", monge.zeros, "3")
expect_error("monge%.zeros: size 2 must be a non%-negative integer, got number %-1", monge.zeros, { 2, -1 })
expect_error("monge%.zeros: the table of sizes has the key 'dtype'", monge.zeros, { 2, dtype = "float64" })
expect_error("monge%.tensor: the table has the key 'dtype'", monge.tensor, { 1, 2, dtype = "int64" })
expect_error("monge%.randn: unknown option 'sed' %(did you mean 'seed'%?%)", monge.randn, { 2 }, { sed = 1 })
expect_error("unknown dtype 'float33' %(did you mean 'float32'%?%)", monge.zeros, { 2 }, { dtype = "float33" })
-- (not a tail call: a tail call leaves no frame to name the method and the line)
err = expect_error("tensor:narrow: argument 2 must be an integer, got string", function() local r = m:narrow(1, "x", 1); return r end)
assert(err:find("^.-" .. here .. ":%d+: tensor:narrow"), err)
expect_error("monge%.exp: argument 1 must be a tensor, got string", monge.exp, "e")
expect_error("monge%.no_grad: argument 1 must be a function, got nil", monge.no_grad, nil)
expect_error("exactly one element", function() return m:item() end)

-- Threads.
local before = monge.threads()
monge.set_threads(1)
assert(monge.threads() == 1)
monge.set_threads(before)
assert(monge.threads() == before)
expect_error("monge%.set_threads: argument 1 must be a positive integer", monge.set_threads, 0)

print("tensor_test: ok")
