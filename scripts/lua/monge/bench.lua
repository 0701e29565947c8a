-- Helpers shared by the benchmark pipelines in scripts/bench/: `local bench = require "monge.bench"`.
local monge = require "monge"
local M = {}

--- Runs a shell command; returns its output (stdout and stderr) and whether it succeeded.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local text = p:read("*a")
  local ok = p:close()
  return text, ok
end

--- The path of the running monge executable (popen's shell is a child of this process), so that
--- a benchmark can time `monge apply` or `monge batch` in processes of their own.
function M.executable()
  return (M.sh("readlink -f /proc/$PPID/exe"):gsub("%s+$", ""))
end

--- The CPU model and the git revision of the working directory, for results.json.
function M.machine()
  return (M.sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"):gsub("^%s+", ""):gsub("%s+$", ""))
end
function M.git_revision()
  return (M.sh("git rev-parse --short HEAD 2>/dev/null"):gsub("%s+$", ""))
end

--- Writes dir/map.pt: a unet map (depth 2, `channels` base channels) after one training
--- iteration on random data. Inference costs the same whatever the weights, so this stands in for
--- a trained map in speed benchmarks. Returns the map file's path.
function M.unet_map(dir, channels, device)
  local x = monge.rand { 16, 1, 32, 32 } * 2 - 1
  local A = monge.operator("identity", {})
  monge.train {
    operator = A, clean = x, measured = x, cost = monge.cost("quadratic", { operator = A }),
    map = monge.network("unet", { channels = channels, depth = 2 }), potential = monge.network("potential", { channels = 4 }),
    solver = monge.solver("uotip", {}), iters = 1, batch = 4, out = dir, progress = false, device = device or "cpu",
  }
  return dir .. "/map.pt"
end

return M
