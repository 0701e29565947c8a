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

--- The CPU model and the git revision of the working directory ("unknown" outside a checkout), for results.json.
function M.machine()
  return (M.sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"):gsub("^%s+", ""):gsub("%s+$", ""))
end
function M.git_revision()
  -- Outside a git checkout git prints an error (captured with stdout by M.sh): say "unknown" instead.
  local rev = M.sh("git rev-parse --short HEAD 2>/dev/null"):gsub("%s+$", "")
  return rev:match("^%x+$") and rev or "unknown"
end

--- `x` rounded to `decimals` places, the number string.format("%.Nf") writes (results.json keeps
--- timings to the digits that mean something); monge.json.null for nil, so that the key stays.
function M.fixed(x, decimals)
  if x == nil then return monge.json.null end
  return tonumber(string.format("%." .. decimals .. "f", x))
end

--- Writes `value` as `path` in JSON (monge.json.encode, indented by 2), through a temporary file
--- renamed into place.
function M.write_json(path, value)
  local f = assert(io.open(path .. ".tmp", "w"))
  f:write(monge.json.encode(value, 2), "\n")
  f:close()
  assert(os.rename(path .. ".tmp", path))
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

--- The settings a speed benchmark compares on `device`: "fp32", "bf16" where it runs (a GPU, or a
--- CPU with native bf16 convolutions: monge.cpu_bf16()'s second value), and on request
--- "fp32-uncached": fp32 with the CPU tensor cache off (MONGE_CPU_CACHE_MB=0), as monge ran before
--- the cache, the reference for what the cache brings, "fp32-unrounded": fp32 with every window
--- run at its own size (--shape-step 0), "fp32-before": fp32 as monge ran before issue 21, the
--- cache off, OpenBLAS's threads on every core whatever --threads says (MONGE_BLAS_THREADS) and
--- windows at their own size, and "bf16-libtorch": bf16 through LibTorch's ops rather than the
--- unet's fused oneDNN graph (MONGE_ONEDNN=0). `wanted` ("fp32,bf16" by default) picks them.
--- Returns the list and a note saying what was left out and why ("" when nothing).
function M.precisions(wanted, device)
  local list, note = {}, ""
  for p in (wanted or "fp32,bf16"):gmatch("[^,]+") do
    assert(p == "fp32" or p == "bf16" or p == "fp32-uncached" or p == "fp32-unrounded" or p == "fp32-before"
           or p == "bf16-libtorch",
           "precisions: fp32, bf16, fp32-uncached, fp32-unrounded, fp32-before and/or bf16-libtorch, got '" .. p .. "'")
    if p:sub(1, 4) == "bf16" and device ~= "cuda" and not select(2, monge.cpu_bf16()) then
      note = "bf16 left out: this CPU (or its DNNL_MAX_CPU_ISA limit) has no native bf16 convolutions"
    else
      list[#list + 1] = p
    end
  end
  return list, note
end

--- The number of cores (OpenBLAS's own default thread count).
local function cores()
  local p = io.popen("nproc 2>/dev/null")
  local n = p and tonumber(p:read("*l") or "")
  if p then p:close() end
  return n or monge.threads()
end

--- A setting of M.precisions as the network's precision ("fp32" or "bf16"), the environment
--- prefix of a `monge` command that runs in it ("MONGE_CPU_CACHE_MB=0 " for fp32-uncached) and the
--- flags it adds to apply or batch ("--shape-step 0 " for fp32-unrounded; "" for most).
function M.setting(name)
  if name == "fp32-uncached" then return "fp32", "MONGE_CPU_CACHE_MB=0 ", "" end
  if name == "bf16-libtorch" then return "bf16", "MONGE_ONEDNN=0 ", "" end
  if name == "fp32-unrounded" then return "fp32", "", "--shape-step 0 " end
  if name == "fp32-before" then
    return "fp32", string.format("MONGE_CPU_CACHE_MB=0 MONGE_BLAS_THREADS=%d ", cores()), "--shape-step 0 "
  end
  return name, "", ""
end

--- Runs fn(precision) in this process as setting `name` runs: for fp32-uncached and fp32-before
--- with the CPU tensor cache holding nothing, for bf16-libtorch with MONGE_ONEDNN=0, restored
--- afterwards (the BLAS threads of fp32-before are set in the `monge` processes it starts only).
--- Returns fn's result.
function M.with_setting(name, fn)
  local precision, env = M.setting(name)
  if env == "" then return fn(precision) end
  local set, restore
  if name == "bf16-libtorch" then  -- read by the unet at each call
    set = function() monge.setenv("MONGE_ONEDNN", "0") end
    restore = function() monge.setenv("MONGE_ONEDNN", nil) end
  else
    local limit = monge.cpu_cache().limit_mb
    set = function() monge.cpu_cache { limit_mb = 0 } end
    restore = function() monge.cpu_cache { limit_mb = limit } end
  end
  set()
  local ok, result = pcall(fn, precision)
  restore()
  if not ok then error(result, 0) end
  return result
end

--- Statistics of a histogram of differences in output levels (an int64 tensor whose element d + 1
--- counts the samples d levels apart, as monge.image.difference returns): { samples, max, p999,
--- mean, within0, within1 } (p999: the 99.9th percentile; within0 and within1: the shares of
--- samples equal and at most 1 level apart).
function M.level_stats(hist)
  local counts, samples, sum, max = {}, 0, 0, 0
  for d = 0, hist:size(1) - 1 do
    local n = hist[d + 1]:item()
    counts[d], samples, sum = n, samples + n, sum + d * n
    if n > 0 then max = d end
  end
  local seen, p999 = 0, max
  for d = 0, max do
    seen = seen + counts[d]
    if seen >= 0.999 * samples then p999 = d break end
  end
  return { samples = samples, max = max, p999 = p999, mean = samples > 0 and sum / samples or 0,
           within0 = samples > 0 and counts[0] / samples or 1,
           within1 = samples > 0 and (counts[0] + (counts[1] or 0)) / samples or 1 }
end

--- The quickstart's training task and networks (GB deblurring of Fashion-MNIST, unet 16 and
--- potential 16, uotip with tau 0.1) as monge.train options, on the first `limit` training images
--- (default 8192; even indices clean, odd measured). `extra` adds or overrides options.
function M.quickstart_config(limit, extra)
  local train = monge.data.fashion_mnist { split = "train", limit = limit or 8192 }
  local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
  local noise = monge.noise("gaussian", { sigma = 0.05 })
  local c = {
    operator = A, noise = noise,
    clean = train.images:index_select(1, monge.arange(0, train.count, 2):long()),
    measured = train.images:index_select(1, monge.arange(1, train.count, 2):long()),
    map = monge.network("unet", { channels = 16, depth = 2 }),
    potential = monge.network("potential", { channels = 16, depth = 3 }),
    solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", tau = 0.1, r1 = 0.2 }),
    cost = monge.cost("likelihood", { operator = A, noise = noise }) + 1.1 * monge.cost("quadratic", { operator = A }),
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

--- A benchmark's `--key value` arguments: `names` lists the keys in the order the error message
--- gives them, `defaults` their values (a key absent there is nil unless given). Raises
--- "NAME: unknown argument '...' (use --a, --b)" or "NAME: --a needs a value".
function M.options(name, args, names, defaults)
  local opts, known = {}, {}
  for k, v in pairs(defaults or {}) do opts[k] = v end
  for _, k in ipairs(names) do known[k] = true end
  local i = 1
  while i <= #args do
    local key = args[i]:match("^%-%-(.+)$")
    -- Level 2: the error names the benchmark script's line, not this helper's.
    if not (key and known[key]) then
      error(name .. ": unknown argument '" .. args[i] .. "' (use --" .. table.concat(names, ", --") .. ")", 2)
    end
    if not args[i + 1] then error(name .. ": " .. args[i] .. " needs a value", 2) end
    opts[key] = args[i + 1]
    i = i + 2
  end
  return opts
end

--- The FID classifier's recipes (monge.train_classifier options): `tiny` trains in seconds (for
--- ctest; not a measurement), `full` reaches >= 90% test accuracy in minutes on 2 cores.
M.classifier_configs = {
  tiny = { train = 2000, test = 500, epochs = 2, batch = 64, lr = 3e-3, widths = { 8, 16, 32 }, features = 32, min_accuracy = 0.3 },
  full = { train = 60000, test = 10000, epochs = 4, batch = 128, lr = 2e-3, widths = { 32, 64, 128 }, features = 128, min_accuracy = 0.9 },
}

--- Trains the Fashion-MNIST classifier with recipe `name` into `file`; returns monge.train_classifier's table.
function M.train_classifier(name, file, progress)
  local cfg = assert(M.classifier_configs[name], "unknown classifier recipe '" .. tostring(name) .. "' (tiny or full)")
  local train = monge.data.fashion_mnist { split = "train", limit = cfg.train }
  local test = monge.data.fashion_mnist { split = "test", limit = cfg.test }
  return monge.train_classifier {
    images = train.images, labels = train.labels, test_images = test.images, test_labels = test.labels,
    widths = cfg.widths, features = cfg.features, flip = false, epochs = cfg.epochs, batch = cfg.batch, lr = cfg.lr,
    seed = 0, out = file, progress = progress,
  }, train, test, cfg
end

--- The losses of a run directory's log.jsonl: { loss_map = { {iter, v}, ... }, loss_potential = ... }.
function M.read_log(dir)
  local losses = { loss_map = {}, loss_potential = {} }
  for line in io.lines(dir .. "/log.jsonl") do
    local record = monge.json.decode(line)
    for key, list in pairs(losses) do
      local v = record[key]  -- absent from rollback and evaluation records; nil when it was NaN
      if record.iter and v then list[#list + 1] = { record.iter, v } end
    end
  end
  return losses
end

return M
