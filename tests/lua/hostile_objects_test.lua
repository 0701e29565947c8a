-- Lua cannot crash the host through monge's objects (issue 19): a __gc called by hand on any
-- value, twice, or on another type's object; an object used after its __gc; methods called with
-- the wrong self or wrong arguments. Every call below runs in pcall: the test passes when the
-- process survives, every freed object errors with "was freed", and untouched objects still work.
local monge = require "monge"
local out = (arg[1] or ".") .. "/hostile_objects_test"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
monge.set_threads(1)

local fm = monge.data.fashion_mnist { split = "train", limit = 64 }
local x = fm.images
-- One object of each userdata type: tensor, plugin (of each kind), map, classifier.
local function make()
  local A = monge.operator("gaussian_blur", { size = 5, sigma = 1.0 })
  local run = monge.train {
    operator = A, noise = monge.noise("gaussian", { sigma = 0.05 }), clean = x:narrow(1, 1, 32), measured = x:narrow(1, 33, 32),
    map = monge.network("unet", { channels = 4, depth = 1 }), potential = monge.network("potential", { channels = 4, depth = 1 }),
    solver = monge.solver("uotip", {}), cost = monge.cost("quadratic", { operator = A }), iters = 1, batch = 4, seed = 0,
    out = out .. "/run", progress = false,
  }
  local cls = monge.train_classifier { images = x, labels = fm.labels, widths = { 4, 4, 4 }, features = 8, epochs = 1, batch = 32,
                                       progress = false }.classifier
  return {
    tensor = monge.rand({ 2, 1, 8, 8 }), operator = A, noise = monge.noise("gaussian", { sigma = 0.1 }),
    cost = monge.cost("quadratic", { operator = A }), network = monge.network("mlp", {}), metric = monge.metric("psnr"),
    map = run.map, classifier = cls,
  }
end
-- Calls each object can take, by type (the arguments are reasonable ones: wrong ones come below).
local img = monge.rand({ 2, 1, 28, 28 }) * 2 - 1
local uses = {
  tensor = function(o) return o:sum():item() + #o end,
  operator = function(o) return o:forward(img):sum():item() end,
  noise = function(o) return o:sample(img, 0):sum():item() end,
  cost = function(o) return o(img, img):sum():item() end,
  network = function(o) return o.name end,
  metric = function(o) return o(img, img) end,
  map = function(o) return o:restore(img):sum():item() end,
  classifier = function(o) return o:predict(img):sum():item() end,
}
local objects = make()
for name, o in pairs(objects) do assert(pcall(uses[name], o), name .. " does not work before the test") end

-- 1. Every type's __gc, called with every value of another type (plugins of every kind share one
-- metatable): foreign values are ignored.
local others = { 1, "s", {}, true, function() end, io.stdout }
for _, o in pairs(objects) do others[#others + 1] = o end
local calls = 0
for name, o in pairs(objects) do
  local gc = getmetatable(o).__gc
  for _, v in ipairs(others) do
    if getmetatable(v) ~= getmetatable(o) then
      pcall(gc, v)
      calls = calls + 1
    end
  end
  pcall(gc)
end
for name, o in pairs(objects) do assert(pcall(uses[name], o), name .. " was harmed by another type's __gc") end

-- 2. Every metamethod and method with wrong self and wrong arguments.
local junk = { nil, 0, -1, 1e300, "x", {}, { 1, 2 }, true, io.stdout }
for name, o in pairs(objects) do
  local mt = getmetatable(o)
  for key, f in pairs(mt) do
    if type(f) == "function" and key ~= "__gc" then
      for _, v in pairs(others) do
        for _, a in pairs(junk) do
          pcall(f, v, a)
          calls = calls + 1
        end
      end
    end
  end
end

-- 3. __gc twice, then every use: a clean error saying the object was freed.
for name, o in pairs(objects) do
  local gc = getmetatable(o).__gc
  gc(o)
  gc(o)
  local ok, err = pcall(uses[name], o)
  assert(not ok and tostring(err):find("was freed"), name .. " after __gc: " .. tostring(err))
  pcall(tostring, o)
  for _, a in pairs(junk) do pcall(uses[name], o, a) end
end
-- The freed objects may be collected again (lua_close finalises each once more): no double free.
objects = nil
collectgarbage()
collectgarbage()
-- Fresh objects still work.
local again = make()
for name, o in pairs(again) do assert(pcall(uses[name], o), name .. " does not work after the test") end
print(string.format("hostile_objects_test: ok (%d hostile calls)", calls))
