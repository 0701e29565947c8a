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
assert(run.evals[2].ssim_degraded > 0.3 and run.evals[2].ssim_degraded < 1, run.evals[2].ssim_degraded)
assert(run.evals[2].ssim > 0 and run.evals[2].ssim < 1, run.evals[2].ssim)
assert(#run.warnings == 0 and run.rollbacks == 0)
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
-- A misspelt field: a suggestion and the list of fields.
local ok_field, field_err = pcall(function() return loaded.nois end)
assert(not ok_field and field_err:find("map has no field 'nois' %(did you mean 'noise'%? it has path, network, operator,"),
  tostring(field_err))
ok_field, field_err = pcall(function() return loaded.xyzzy end)
assert(not ok_field and field_err:find("map has no field 'xyzzy' %(it has path, network, .*, reseed%)"), tostring(field_err))
assert(loaded.network == "unet" and loaded.metrics.psnr == run.evals[2].psnr)
assert(loaded:restore(y):allclose(run.map:restore(y), 1e-6, 1e-6))
assert(table.concat(loaded:restore(y):shape(), ",") == "64,1,28,28")
-- Measurements as an image, for the `monge apply` CLI tests.
monge.image.save(monge.image.grid(y:narrow(1, 1, 8), { nrow = 4 }), out .. "/measured.png")

-- 3 iterations, then a resumed run to 6, equals the straight 6.
monge.train(config(out .. "/resumed", 3, { eval_every = 3 }))
local resumed = monge.train(config(out .. "/resumed", 6, { resume = true, eval_every = 3 }))
assert(resumed.iterations == 3, resumed.iterations)
assert(resumed.map:restore(y):equal(run.map:restore(y)), "resumed training differs from the straight run")

-- A NaN in the middle of training (the cost's 9th call, i.e. iteration 5): rolled back to the
-- checkpoint of iteration 4 with halved learning rates, then training finishes.
local function cost_failing_at(failing, factor)
  local calls = 0
  return monge.cost(function(y, x)
    calls = calls + 1
    local c = sum((A(x) - y):pow(2)) + sum((x - y):pow(2))
    if failing(calls) then return c * (factor or 0 / 0) end
    return c
  end, "flaky")
end
local flaky = monge.train(config(out .. "/flaky", 8, { checkpoint_every = 2, cost = cost_failing_at(function(n) return n == 9 end) }))
assert(flaky.rollbacks == 1 and flaky.iterations == 8, flaky.rollbacks)
assert(flaky.stats.lr_scale == 0.5, flaky.stats.lr_scale)
local restored = flaky.map:restore(y)
local total = restored:sum():item()
assert(total == total, "NaN in the map after the rollback")
local events = 0
for line in io.lines(out .. "/flaky/log.jsonl") do
  if line:find('"event": "rollback"') then
    events = events + 1
    assert(line:find('"iter": 4') and line:find('"diverged_at": 5') and line:find('"lr_factor": 0.5'), line)
  end
end
assert(events == 1, events)

-- An exploding but finite loss (the cost times 1e9 at iteration 5) is a divergence only with
-- max_loss: then it is rolled back like a NaN, with the reason in the log.
local function exploding(extra)
  local c = config(out .. "/exploding", 8, { checkpoint_every = 2, cost = cost_failing_at(function(n) return n == 9 end, 1e9) })
  for k, v in pairs(extra) do c[k] = v end
  return monge.train(c)
end
local guarded = exploding { max_loss = 1e6 }
assert(guarded.rollbacks == 1 and guarded.iterations == 8 and guarded.stats.lr_scale == 0.5, guarded.rollbacks)
local reason
for line in io.lines(out .. "/exploding/log.jsonl") do
  if line:find('"event": "rollback"') then reason = line end
end
assert(reason and reason:find("above max_loss 1000000") and reason:find('"diverged_at": 5'), tostring(reason))
local unguarded = exploding {}
assert(unguarded.rollbacks == 0, "without max_loss a finite loss must not roll back")
local bad_limit, bad_limit_err = pcall(exploding, { max_loss = -1 })
assert(not bad_limit and bad_limit_err:find("monge.train: parameter 'max_loss' expects a number in [0, inf], got -1", 1, true),
       bad_limit_err)

-- Always NaN from iteration 3 on: after max_rollbacks the run stops with a clear error, and the
-- checkpoint it leaves resumes cleanly with a healthy cost.
local ok, err = pcall(monge.train, config(out .. "/diverging", 6, {
  checkpoint_every = 2, max_rollbacks = 2, cost = cost_failing_at(function(n) return n >= 5 end) }))
assert(not ok and err:find("iteration 3 diverged %(cost = null%) after 2 rollback%(s%)") and err:find("is intact"), err)
local resumed_ok = monge.train(config(out .. "/diverging", 6, { resume = true }))
assert(resumed_ok.iterations == 4 and resumed_ok.rollbacks == 0, resumed_ok.iterations)

-- bf16 autocast runs (on the CPU here) and stays finite where oneDNN has bf16 convolutions
-- (AVX-512); elsewhere (an AVX2 CPU, or DNNL_MAX_CPU_ISA=AVX2) it is a clear error before any work.
if monge.cpu_bf16() then
  local bf16 = monge.train(config(out .. "/bf16", 2, { precision = "bf16" }))
  assert(bf16.stats.loss_map == bf16.stats.loss_map and bf16.stats.loss_potential == bf16.stats.loss_potential)
else
  local ok_bf16, err_bf16 = pcall(monge.train, config(out .. "/bf16", 2, { precision = "bf16" }))
  assert(not ok_bf16 and err_bf16:find("precision 'bf16' needs LibTorch's bfloat16 convolutions", 1, true), err_bf16)
end

-- The twist check: a likelihood cost with no quadratic term is warned about.
local lik = monge.cost("likelihood", { operator = A, noise = noise })
local warned = monge.train(config(out .. "/twist", 1, { cost = lik }))
assert(#warned.warnings == 1 and warned.warnings[1]:find("no quadratic term"), warned.warnings[1])
-- With reflect padding this blur's Lipschitz bound is 1.119 > 1, so lambda = 1 is too small.
local quad = monge.cost("quadratic", { operator = A })
local low = monge.train(config(out .. "/twist", 1, { cost = lik + quad }))
assert(#low.warnings == 1 and low.warnings[1]:find("lambda = 1, below the operator's Lipschitz bound L = 1.119"), low.warnings[1])
local fine = monge.train(config(out .. "/twist", 1, { cost = lik + 1.2 * quad }))
assert(#fine.warnings == 0, fine.warnings[1])

-- Bad configurations.
local function expect_error(pattern, c)
  local ok, err = pcall(monge.train, c)
  assert(not ok and err:find(pattern), tostring(err))
end
local no_operator = config(out .. "/bad", 1)
no_operator.operator = nil
expect_error("monge%.train: parameter 'operator' is required %(operator object: forward operator", no_operator)
expect_error("'clean' and 'measured' images differ in shape", config(out .. "/bad", 1, { measured = monge.zeros { 4, 1, 14, 14 } }))
expect_error("unknown option 'iter' %(did you mean 'iters'%?%)", config(out .. "/bad", 1, { iter = 3 }))
expect_error("monge%.train: parameter 'precision' expects one of fp32|bf16, got \"fp16\" %(did you mean 'fp32'%?%)",
             config(out .. "/bad", 1, { precision = "fp16" }))
-- Types and ranges come from the declaration (host/train/options.cpp).
expect_error("monge%.train: parameter 'iters' expects an integer in %[1, inf%], got 0", config(out .. "/bad", 1, { iters = 0 }))
expect_error("monge%.train: parameter 'batch' expects an integer, got number 2%.5",
             config(out .. "/bad", 1, { batch = 2.5 }))
expect_error("monge%.train: parameter 'resume' expects a boolean, got string \"yes\"", config(out .. "/bad", 1, { resume = "yes" }))
expect_error("monge%.train: parameter 'solver' expects a solver object, got cost object",
             config(out .. "/bad", 1, { solver = monge.cost("quadratic", { operator = A }) }))
expect_error("monge%.train: parameter 'device' expects one of auto|cpu|cuda", config(out .. "/bad", 1, { device = "gpu" }))
expect_error("the operator cannot take the training images", config(out .. "/bad", 1, {
  operator = monge.operator("downsample", { factor = 2 }), clean = monge.zeros { 4, 1, 27, 27 }, measured = monge.zeros { 4, 1, 27, 27 },
  eval = monge.zeros { 2, 1, 27, 27 } }))
expect_error("'eval' images differ in shape", config(out .. "/bad", 1, { eval = monge.zeros { 2, 3, 28, 28 } }))
if not monge.cuda_available() then
  expect_error("device 'cuda' requested", config(out .. "/bad", 1, { device = "cuda" }))
end
-- A map file that is not one.
local f = assert(io.open(out .. "/junk.pt", "wb")); f:write("not a map"); f:close()
local ok, err = pcall(monge.load_map, out .. "/junk.pt")
assert(not ok and err:find("junk.pt: not a monge map file %(neither"), err)
print("train_test: ok")
