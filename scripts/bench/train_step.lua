-- Training-step speed against PyTorch: the quickstart's UOTIP iteration in monge and in PyTorch.
--
--   monge bench train-step [OUT_DIR=runs/bench-train-step] [ITERS=60] [WARMUP=5] [BATCH=64]
--                          [MAX_THREADS=all cores] [ROUNDS=1]
--
-- One iteration is monge.train's: batch indices, the degradation of the measured batch, the uotip
-- step (map, then potential with the R1 penalty), the map's moving average and the logged
-- statistics, with the quickstart's networks (unet 16/2, potential 16/3), cost and solver on
-- Fashion-MNIST (blur 13/1.5, noise 0.05). The same iteration written in PyTorch,
-- reference/uotip_step.py beside this script (Debian's python3-torch, run by $MONGE_PYTHON,
-- default /usr/bin/python3), runs in a process of its own right after monge's, with the same
-- architecture, batch and thread count. It first loads the initial weights and the first batch
-- that monge's run dumped (monge.train's dump_first_step) and checks that one step gives the same
-- losses (relative tolerance 1e-4): a failed check is an error. Both time ITERS iterations after
-- WARMUP, on 1 thread and on MAX_THREADS; with ROUNDS > 1 the two alternate ROUNDS times and the
-- median is kept. Prints it/s and the ratio monge / PyTorch; writes OUT_DIR/results.json.
local monge = require "monge"
local bench = require "monge.bench"

local out = arg[1] or "runs/bench-train-step"
local iters = tonumber(arg[2] or "60")
local warmup = tonumber(arg[3] or "5")
local batch = tonumber(arg[4] or "64")
local max_threads = tonumber(arg[5] or tostring(monge.threads()))
local rounds = tonumber(arg[6] or "1")
assert(iters and iters >= 1 and warmup and warmup >= 0 and batch and batch >= 1 and max_threads and max_threads >= 1
       and rounds and rounds >= 1, "ITERS, BATCH, MAX_THREADS and ROUNDS must be positive numbers, WARMUP at least 0")
local tolerance = 1e-4
local python = os.getenv("MONGE_PYTHON") or "/usr/bin/python3"
local reference = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/reference/uotip_step.py"
local pool = 8192
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")

local train = monge.data.fashion_mnist { split = "train", limit = pool }
local clean = train.images:index_select(1, monge.arange(0, train.count, 2):long())
local measured = train.images:index_select(1, monge.arange(1, train.count, 2):long())
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
local cost = monge.cost("likelihood", { operator = A, noise = noise }) + 1.1 * monge.cost("quadratic", { operator = A })

-- monge: it/s over the iterations after the warm-up, from the times log.jsonl records after each.
local function monge_run(threads, dump)
  monge.set_threads(threads)
  local dir = out .. "/monge-run"
  monge.train {
    operator = A, noise = noise, clean = clean, measured = measured,
    map = monge.network("unet", { channels = 16, depth = 2 }),
    potential = monge.network("potential", { channels = 16, depth = 3 }),
    solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", tau = 0.1, r1 = 0.2 }), cost = cost,
    iters = warmup + iters, batch = batch, seed = 0, log_every = 1, out = dir, progress = false, device = "cpu",
    dump_first_step = dump,
  }
  local times = {}
  for line in io.lines(dir .. "/log.jsonl") do
    local it, t = line:match('^{"iter": (%d+), "time": ([%d.eE+-]+)')
    if it then times[tonumber(it)] = tonumber(t) end
  end
  os.execute("rm -rf '" .. dir .. "'")
  local t0 = warmup > 0 and assert(times[warmup], "no time logged at the warm-up's end") or 0
  return iters / (assert(times[warmup + iters], "no time logged at the last iteration") - t0)
end

-- PyTorch: the reference's last output line is JSON; returns it/s and the check's verdict.
local function pytorch_run(threads, dump)
  local cmd = string.format("'%s' '%s' --threads %d --iters %d --warmup %d --batch %d --pool %d --tolerance %g",
    python, reference, threads, iters, warmup, batch, pool, tolerance)
  if dump then cmd = cmd .. " --check '" .. dump .. "'" end
  local text, ok = bench.sh(cmd)
  local json
  for line in text:gmatch("[^\n]+") do json = line:match("^{.*}$") or json end
  local check
  if dump then
    check = {
      ok = json and json:match('"ok": (%a+)') == "true",
      difference = json and tonumber(json:match('"max_relative_difference": ([%d.eE+-]+)')),
      worst = json and json:match('"worst": "([%w_]+)"'),
    }
    if not check.ok then error("train_step: the PyTorch step does not reproduce monge's losses:\n" .. text, 0) end
  end
  if not ok or not json then error("train_step: the PyTorch reference failed (" .. cmd .. "):\n" .. text, 0) end
  return assert(tonumber(json:match('"its_per_second": ([%d.eE+-]+)')), "no its_per_second in:\n" .. text), check
end

local function median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
end

local counts = { 1 }
if max_threads > 1 then counts[#counts + 1] = max_threads end
print(string.format("train_step: %d timed iterations after %d of warm-up, batch %d, %d round(s); PyTorch: %s %s",
  iters, warmup, batch, rounds, python, reference))
local results = {}
for _, n in ipairs(counts) do
  local ours, theirs, check = {}, {}, nil
  for r = 1, rounds do
    local dump = r == 1 and string.format("%s/first-step-%d-threads", out, n) or nil
    ours[r] = monge_run(n, dump)
    local c
    theirs[r], c = pytorch_run(n, dump)
    check = check or c
  end
  local m, p = median(ours), median(theirs)
  results[#results + 1] = { threads = n, monge = m, pytorch = p, ratio = m / p, check = check, ours = ours, theirs = theirs }
  print(string.format("  %2d thread(s): monge %6.2f it/s   PyTorch %6.2f it/s   monge/PyTorch %.3f   loss check passed (max relative difference %.2g, %s)",
    n, m, p, m / p, check.difference, check.worst))
end

local function list(v)
  local s = {}
  for i, x in ipairs(v) do s[i] = string.format("%.4f", x) end
  return "[" .. table.concat(s, ", ") .. "]"
end
local rows = {}
for i, r in ipairs(results) do
  rows[i] = string.format('{"threads": %d, "monge_its_per_second": %.4f, "pytorch_its_per_second": %.4f, "ratio": %.4f, '
    .. '"monge_rounds": %s, "pytorch_rounds": %s, "loss_check": {"passed": true, "max_relative_difference": %.3g, "worst": "%s", "tolerance": %g}}',
    r.threads, r.monge, r.pytorch, r.ratio, list(r.ours), list(r.theirs), r.check.difference, r.check.worst, tolerance)
end
local f = assert(io.open(out .. "/results.json", "w"))
f:write(string.format('{\n  "benchmark": "train-step",\n  "machine": {"cpu": "%s", "max_threads": %d},\n  "git_revision": "%s",\n'
  .. '  "iters": %d, "warmup": %d, "batch": %d, "rounds": %d,\n'
  .. '  "networks": {"map": "unet channels=16 depth=2", "potential": "potential channels=16 depth=3"},\n'
  .. '  "settings": [\n    %s\n  ]\n}\n',
  bench.machine(), max_threads, bench.git_revision(), iters, warmup, batch, rounds, table.concat(rows, ",\n    ")))
f:close()
print("wrote " .. out .. "/results.json")
