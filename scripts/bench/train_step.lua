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
-- median is kept. Prints it/s, the ratio monge / PyTorch, and CPU milliseconds per iteration
-- (process CPU time, all threads: less sensitive to other load on the machine than it/s, though
-- with several threads it also counts OpenMP's spin-waiting) with the ratio PyTorch / monge.
-- Writes OUT_DIR/results.json.
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

local task = bench.quickstart_config(pool)

-- monge: it/s over the iterations after the warm-up, from the times log.jsonl records after each,
-- and CPU seconds per iteration (os.clock(), all threads): the full run's less that of a run of the
-- warm-up alone, so that set-up and warm-up cancel out.
local function monge_run(threads, dump)
  monge.set_threads(threads)
  local dir = out .. "/monge-run"
  local function run(n, dump_dir)
    os.execute("rm -rf '" .. dir .. "'")
    local c0 = os.clock()
    local c = {}
    for k, v in pairs(task) do c[k] = v end
    c.solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", tau = 0.1, r1 = 0.2 })  -- fresh optimiser state
    c.iters, c.batch, c.seed, c.log_every, c.out, c.progress, c.device = n, batch, 0, 1, dir, false, "cpu"
    c.dump_first_step = dump_dir
    monge.train(c)
    return os.clock() - c0
  end
  local short = math.max(warmup, 1)
  run(short)  -- takes one-time costs (oneDNN's kernels for this thread count) off both measured runs
  local cpu_full = run(warmup + iters, dump)
  local times = {}
  for line in io.lines(dir .. "/log.jsonl") do
    local record = monge.json.decode(line)  -- evaluation and rollback records have no time
    if record.iter and record.time then times[record.iter] = record.time end
  end
  local cpu_short = run(short)
  os.execute("rm -rf '" .. dir .. "'")
  local t0 = warmup > 0 and assert(times[warmup], "no time logged at the warm-up's end") or 0
  local seconds = assert(times[warmup + iters], "no time logged at the last iteration") - t0
  return iters / seconds, (cpu_full - cpu_short) / (warmup + iters - short)
end

-- PyTorch: the reference's last output line is JSON; returns it/s, CPU seconds per iteration and the
-- check's verdict.
local function pytorch_run(threads, dump)
  local cmd = string.format("'%s' '%s' --threads %d --iters %d --warmup %d --batch %d --pool %d --tolerance %g",
    python, reference, threads, iters, warmup, batch, pool, tolerance)
  if dump then cmd = cmd .. " --check '" .. dump .. "'" end
  local text, ok = bench.sh(cmd)
  local last
  for line in text:gmatch("[^\n]+") do last = line:match("^{.*}$") or last end
  -- Python writes NaN as a bare word, which is not JSON: such a line reads as no result.
  local parsed, result = pcall(monge.json.decode, last or "")
  if not parsed or type(result) ~= "table" then result = nil end
  local check
  if dump then
    local verdict = result and type(result.check) == "table" and result.check or {}
    check = { ok = verdict.ok == true, difference = verdict.max_relative_difference, worst = verdict.worst }
    if not check.ok then error("train_step: the PyTorch step does not reproduce monge's losses:\n" .. text, 0) end
  end
  if not ok or not result then error("train_step: the PyTorch reference failed (" .. cmd .. "):\n" .. text, 0) end
  local its = assert(tonumber(result.its_per_second), "no its_per_second in:\n" .. text)
  return its, assert(tonumber(result.cpu_seconds_per_iter), "no cpu_seconds_per_iter in:\n" .. text), check
end

local function median(v)
  local s = { unpack(v) }
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local counts = { 1 }
if max_threads > 1 then counts[#counts + 1] = max_threads end
print(string.format("train_step: %d timed iterations after %d of warm-up, batch %d, %d round(s); PyTorch: %s %s",
  iters, warmup, batch, rounds, python, reference))
local results = {}
for _, n in ipairs(counts) do
  local r = { threads = n, ours = {}, theirs = {}, ours_cpu = {}, theirs_cpu = {} }
  for k = 1, rounds do
    local dump = k == 1 and string.format("%s/first-step-%d-threads", out, n) or nil
    r.ours[k], r.ours_cpu[k] = monge_run(n, dump)
    local check
    r.theirs[k], r.theirs_cpu[k], check = pytorch_run(n, dump)
    r.check = r.check or check
  end
  r.monge, r.pytorch, r.monge_cpu, r.pytorch_cpu = median(r.ours), median(r.theirs), median(r.ours_cpu), median(r.theirs_cpu)
  r.ratio, r.cpu_ratio = r.monge / r.pytorch, r.pytorch_cpu / r.monge_cpu
  results[#results + 1] = r
  print(string.format("  %2d thread(s): monge %6.2f it/s (CPU %4.0f ms/it)   PyTorch %6.2f it/s (CPU %4.0f ms/it)   "
    .. "monge/PyTorch %.3f (CPU %.3f)   loss check passed (max relative difference %.2g, %s)",
    n, r.monge, 1000 * r.monge_cpu, r.pytorch, 1000 * r.pytorch_cpu, r.ratio, r.cpu_ratio, r.check.difference, r.check.worst))
end

-- Numbers kept to the digits the results have always had.
local function digits(x, n) return tonumber(string.format("%." .. n .. "g", x)) end
local function list(v)
  local s = {}
  for i, x in ipairs(v) do s[i] = digits(x, 5) end
  return s
end
local rows = {}
for i, r in ipairs(results) do
  rows[i] = {
    threads = r.threads, monge_its_per_second = bench.fixed(r.monge, 4), pytorch_its_per_second = bench.fixed(r.pytorch, 4),
    ratio = bench.fixed(r.ratio, 4), monge_cpu_seconds_per_iter = bench.fixed(r.monge_cpu, 5),
    pytorch_cpu_seconds_per_iter = bench.fixed(r.pytorch_cpu, 5), cpu_ratio = bench.fixed(r.cpu_ratio, 4),
    monge_rounds = list(r.ours), pytorch_rounds = list(r.theirs), monge_cpu_rounds = list(r.ours_cpu),
    pytorch_cpu_rounds = list(r.theirs_cpu),
    loss_check = { passed = true, max_relative_difference = digits(r.check.difference, 3), worst = r.check.worst,
                   tolerance = tolerance },
  }
end
bench.write_json(out .. "/results.json", {
  benchmark = "train-step", machine = { cpu = bench.machine(), max_threads = max_threads }, git_revision = bench.git_revision(),
  iters = iters, warmup = warmup, batch = batch, rounds = rounds,
  networks = { map = "unet channels=16 depth=2", potential = "potential channels=16 depth=3" },
  settings = rows,
})
print("wrote " .. out .. "/results.json")
