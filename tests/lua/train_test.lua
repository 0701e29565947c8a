-- Training end to end on real Fashion-MNIST, in seconds: files written, the map file reloads and
-- restores, resume continues exactly, bad configurations give clear errors.
local monge = require "monge"
local out = (arg[1] or ".") .. "/train_test"
os.execute("rm -rf '" .. out .. "'")
monge.set_threads(1)  -- identical arithmetic in the straight and the resumed run

local fm = monge.data.fashion_mnist { split = "train", limit = 512 }
local even = monge.arange(0, 512, 2):long()
local odd = monge.arange(1, 512, 2):long()
local clean = fm.images:index_select(1, even)       -- X
local measured = fm.images:index_select(1, odd)     -- signals behind Y: disjoint from X
local eval = monge.data.fashion_mnist { split = "test", limit = 64 }.images

local A = monge.operator("gaussian_blur", { size = 5, sigma = 1.0 })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local sum = function(t) return t:flatten(2):sum(2) end
local cost = monge.cost(function(y, x) return sum((A(x) - y):pow(2)) + sum((x - y):pow(2)) end, "full")

local function config(dir, iters, extra)
  local c = {
    operator = A, noise = noise, clean = clean, measured = measured, eval = eval,
    map = monge.network("unet", { channels = 4, depth = 1 }),
    potential = monge.network("potential", { channels = 4, depth = 2 }),
    solver = monge.solver("uotip", { lr_map = 1e-3, lr_potential = 1e-3 }),
    cost = cost, iters = iters, batch = 8, seed = 3, out = dir, progress = false, log_every = 1,
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- A straight run of 6 iterations.
local run = monge.train(config(out .. "/straight", 6, { eval_every = 3 }))
assert(run.iterations == 6 and run.its_per_second > 0)
assert(#run.evals == 2 and run.evals[1].iter == 3 and run.evals[2].iter == 6, #run.evals)
assert(run.evals[2].psnr_degraded > 10 and run.evals[2].psnr > 5, run.evals[2].psnr)
for _, f in ipairs { "map.pt", "checkpoint.pt", "log.jsonl" } do
  assert(io.open(out .. "/straight/" .. f), f .. " not written")
end
local lines = 0
for line in io.lines(out .. "/straight/log.jsonl") do
  lines = lines + 1
  assert(line:match('^{"iter": %d+'), line)
end
assert(lines == 7, "log lines: " .. lines)  -- 6 iterations + the final evaluation

-- The map file reloads to the same function and knows its operator (restore lifts y).
local y = noise:sample(A(eval), 0)
local loaded = monge.load_map(run.map_path)
assert(loaded.network == "unet" and loaded.metrics.psnr == run.evals[2].psnr)
assert(loaded:restore(y):allclose(run.map:restore(y), 1e-6, 1e-6))
assert(table.concat(loaded:restore(y):shape(), ",") == "64,1,28,28")

-- 3 iterations, then a resumed run to 6, equals the straight 6.
monge.train(config(out .. "/resumed", 3, { eval_every = 3 }))
local resumed = monge.train(config(out .. "/resumed", 6, { resume = true, eval_every = 3 }))
assert(resumed.iterations == 3, resumed.iterations)
assert(resumed.map:restore(y):equal(run.map:restore(y)), "resumed training differs from the straight run")

-- Bad configurations.
local function expect_error(pattern, c)
  local ok, err = pcall(monge.train, c)
  assert(not ok and err:find(pattern), tostring(err))
end
local no_operator = config(out .. "/bad", 1)
no_operator.operator = nil
expect_error("'operator' %(a operator%) is required", no_operator)
expect_error("'clean' and 'measured' images differ in shape", config(out .. "/bad", 1, { measured = monge.zeros { 4, 1, 14, 14 } }))
expect_error("unknown option 'iter' %(did you mean 'iters'%?%)", config(out .. "/bad", 1, { iter = 3 }))
if not monge.cuda_available() then
  expect_error("device 'cuda' requested", config(out .. "/bad", 1, { device = "cuda" }))
end
-- A map file that is not one.
local f = assert(io.open(out .. "/junk.pt", "wb")); f:write("not a map"); f:close()
local ok, err = pcall(monge.load_map, out .. "/junk.pt")
assert(not ok and err:find("junk.pt: not a monge map file"), err)
print("train_test: ok")
