-- `monge eval MAP --data SPEC --out DIR [...]`: the command line of monge.evaluate (evaluate.lua).
-- Run by the host with the command's arguments; `monge eval --help` is printed by the host.
-- Exit codes: 2 for a bad command line, 1 for bad input or a failed computation.
local monge = require "monge"
local evaluate = require "monge.evaluate"

local cli = require "monge.cli"
local usage = cli.usage("eval")

-- Flags, types, ranges and defaults from the declaration (host/lua/script_options.cpp).
local o, positional, given = cli.options("eval", { ... })
if #positional ~= 1 then
  usage(#positional == 0 and "give a map file (monge eval runs/gb/map.pt --data fashion-mnist:test:1000 --noise gaussian:sigma=0.05 --out eval/)"
    or "give one map file, got " .. #positional .. " arguments (" .. table.concat(positional, " ") .. ")")
end

-- The data spec: SCHEME:ARG[:N], or a folder of degraded images with --reference.
local scheme, rest, limit = cli.split_set(o.data, "--data", usage)
local degraded_folder = given.reference ~= nil
if degraded_folder then
  if scheme then usage("--reference goes with a folder of degraded images (--data DIR), not with " .. scheme .. ":") end
  if given.noise or given.seed then usage("--noise and --seed degrade clean images; the images of --data " .. o.data .. " are degraded already") end
else
  if not scheme then
    usage("--data '" .. o.data .. "': expected fashion-mnist:test[:N], idx:FILE[:N], folder:DIR[:N], or a folder of degraded " ..
      "images with --reference CLEAN_DIR")
  end
end

cli.run("eval", function()
  -- Metrics first: an unknown name fails before any data is read.
  local metrics = evaluate.split_metrics(o.metrics)
  for _, m in ipairs(metrics) do evaluate.parse_spec(m, "--metrics") end
  local map = monge.load_map(positional[1], { trust_code = o.trust_code })
  if not degraded_folder and not given.noise then
    -- The noise the map was trained with, as its file records it.
    o.noise = map.noise
    if not o.noise then
      usage("--noise is required with a clean test set: " .. positional[1] .. " does not record the noise it was " ..
        "trained with (a TorchScript map, or a map file from before monge recorded it); e.g. --noise " ..
        "gaussian:sigma=0.05, or --noise none")
    end
  end
  local clean, measured, description = nil, nil, o.data
  if degraded_folder then
    local y = monge.data.images { dir = o.data }
    local x = monge.data.images { dir = o.reference }
    local function key(path) return (path:match("[^/]*$"):gsub("%.[^.]*$", "")) end
    local by_name = {}
    for j, f in ipairs(x.files) do by_name[key(f)] = j - 1 end
    local index, missing = {}, {}
    for _, f in ipairs(y.files) do
      local j = by_name[key(f)]
      if j then index[#index + 1] = j else missing[#missing + 1] = f:match("[^/]*$") end
    end
    if #missing > 0 then
      error(string.format("%d degraded image(s) have no clean original of the same name in %s: %s%s", #missing, o.reference,
        table.concat(missing, ", ", 1, math.min(5, #missing)), #missing > 5 and ", ..." or ""), 0)
    end
    measured = y.images
    clean = x.images:index_select(1, monge.tensor(index, { dtype = "int64" }))
    description = o.data .. " (reference " .. o.reference .. ")"
  else
    clean = cli.load_set(scheme, rest, limit)
  end
  local r = evaluate.evaluate {
    map = map, clean = clean, measured = measured, noise = (not degraded_folder) and o.noise or nil,
    seed = (not degraded_folder) and o.seed or nil, metrics = metrics, out = o.out, grid = o.grid, batch = o.batch,
    threads = o.threads > 0 and o.threads or nil, device = o.device, progress = o.progress, data = description,
  }
  print(string.format("eval: %s on %s: %d images%s, %.1f s", positional[1], description, r.count,
    r.noise and string.format(", noise %s, seed %d", r.noise, r.seed) or "", r.seconds))
  local wiener = r.results and r.results.baseline == "wiener lift"
  print(string.format("  %-10s %12s %12s %10s", "metric", wiener and "Wiener lift" or "degraded", "restored", "gain"))
  for _, name in ipairs(r.order) do
    local m = r.metrics[name]
    print(string.format("  %-10s %12.4f %12.4f %+10.4f", name, m.degraded, m.restored, m.gain))
  end
  if wiener then print("  (the baseline is the map's lift, the unpaired Wiener restoration of the measurements)") end
  local written = {}
  for _, k in ipairs { "results", "grid", "report" } do written[#written + 1] = r.files[k] end
  print("wrote " .. table.concat(written, ", "))
end)
