-- Compares two runs of train_small.lua.
--   monge run compare.lua RUN_A RUN_B same|different
-- same: the maps agree to 1e-5 on test images and the logged map losses to 1e-5;
-- different: the logged map losses differ by more than 2e-4 (the comparison tells runs apart).
-- Over many steps float rounding differences grow (Adam normalises tiny gradients), so the runs
-- compared are short.
-- Both logs must hold every iteration exactly once (one writer).
local monge = require "monge"
local a, b, mode = arg[1], arg[2], arg[3]

local function losses(dir)
  local seen, list = {}, {}
  for line in io.lines(dir .. "/log.jsonl") do
    local it = tonumber(line:match('^{"iter": (%d+)'))
    local loss = tonumber(line:match('"loss_map": ([-%d.e+]+)'))
    if it and loss then
      assert(not seen[it], dir .. ": iteration " .. it .. " logged twice (more than one writer?)")
      seen[it] = true
      list[#list + 1] = loss
    end
  end
  return list
end

local test = monge.data.fashion_mnist { split = "test", limit = 64 }.images
local ma, mb = monge.load_map(a .. "/map.pt"), monge.load_map(b .. "/map.pt")
local diff = (ma:forward(test) - mb:forward(test)):abs():max():item()
local la, lb = losses(a), losses(b)
assert(#la == #lb and #la > 0, string.format("logs differ in length: %d and %d", #la, #lb))
local worst = 0
for i = 1, #la do worst = math.max(worst, math.abs(la[i] - lb[i])) end
print(string.format("map outputs differ by at most %.3g; logged map losses by at most %.3g", diff, worst))
if mode == "same" then
  assert(diff < 1e-5, "the maps should agree")
  assert(worst < 1e-5, "the logged losses should agree")
else
  assert(worst > 2e-4, "the runs should differ")
end
print("ok")
