-- The `monge` Lua module: the C core (tensors, plugins, data, images) plus helpers written in Lua.
-- `require "monge"` in any pipeline run by `monge run`.
local M = require "monge.core"

--- Fashion-MNIST from Debian's dataset-fashion-mnist (or $MONGE_FASHION_MNIST).
-- opts.split: "train" (60,000 images) or "test" (10,000); opts.limit: read only the first n.
-- Returns { images = N x 1 x 28 x 28 in [-1, 1], labels = N (int64), count = N }.
function M.data.fashion_mnist(opts)
  opts = opts or {}
  local split = opts.split or "train"
  local prefix = ({ train = "train", test = "t10k" })[split]
  if not prefix then
    error("monge.data.fashion_mnist: split must be 'train' or 'test', got " .. tostring(split), 2)
  end
  local dir = opts.dir or M.data.fashion_mnist_dir()
  local set = M.data.idx {
    images = dir .. "/" .. prefix .. "-images-idx3-ubyte.gz",
    labels = dir .. "/" .. prefix .. "-labels-idx1-ubyte.gz",
    limit = opts.limit,
  }
  if opts.classes then set = M.data.classes(set, opts.classes) end
  return set
end

--- Scores a map on a frozen degraded test set (see monge/evaluate.lua and docs/lua.md).
function M.evaluate(opts) return require("monge.evaluate").evaluate(opts) end

--- Estimates an operator's unknown parameter and the noise level from unpaired clean and measured
--- sets (see monge/calibrate.lua and docs/lua.md).
function M.calibrate(opts) return require("monge.calibrate").calibrate(opts) end

return M
