-- monge.evaluate{...} and `monge eval`: scores a map on a frozen degraded test set, next to the
-- degraded input as the baseline, and writes results.json, grid.png and a self-contained
-- report.html. One implementation: the CLI (eval_cli.lua) parses its arguments into the same call.
local monge = require "monge"
local report = require "monge.report"
local M = {}

local function fail(msg) error(msg, 0) end

-- A plugin spec "name:key=value,key=value" (or a list of such tokens already split on commas) as
-- name and params. Values become numbers or booleans when they read as such.
local function parse_value(text)
  if text == "true" then return true elseif text == "false" then return false end
  return tonumber(text) or text
end
function M.parse_spec(text, what)
  local name, rest = text:match("^([^:]+):(.*)$")
  name = name or text
  local params = {}
  if rest and rest ~= "" then
    for item in rest:gmatch("[^,]+") do
      local k, v = item:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if not k then fail(what .. ": expected key=value after '" .. name .. ":', got '" .. item .. "'") end
      params[k] = parse_value(v)
    end
  end
  if not name:match("^[%w_]+$") then fail(what .. ": '" .. text .. "' is not a plugin name (NAME or NAME:key=value,...)") end
  return name, params
end

-- "psnr,ssim,fid:classifier=f.pt,dims=64": commas separate metrics, except that a token holding
-- '=' but no ':' continues the parameters of the metric before it.
function M.split_metrics(text)
  local out = {}
  for token in text:gmatch("[^,]+") do
    if token:find("=", 1, true) and not token:find(":", 1, true) and #out > 0 then
      out[#out] = out[#out] .. "," .. token
    else
      out[#out + 1] = token
    end
  end
  return out
end

-- Metrics from a list of names, "name:key=value" specs, metric objects (monge.metric) or Lua
-- tables { name = "mine", per_image = function(restored, reference) ... end (or score = function
-- for a set-level metric), higher_is_better = true }. An unknown name is an error with a
-- suggestion (from the plugin registry) before any work is done.
local function resolve_metrics(list)
  local metrics, seen = {}, {}
  for _, m in ipairs(list) do
    local e
    if type(m) == "string" then
      local name, params = M.parse_spec(m, "metric")
      local ok, res = pcall(monge.metric, name, params)
      if not ok then fail("metric '" .. m .. "': " .. tostring(res):gsub("^[^%s]-%.lua:%d+: ", "")) end
      m = res
    end
    if type(m) == "userdata" and m.kind == "metric" then
      local obj = m
      e = { name = obj.name, set_level = obj:set_level(), higher_is_better = obj:higher_is_better(),
            per_image = function(a, b) return obj:per_image(a, b) end,
            aggregate = function(v) return obj:aggregate(v) end, score = function(a, b) return obj(a, b) end }
    elseif type(m) == "table" and type(m.name) == "string" and (type(m.per_image) == "function" or type(m.score) == "function") then
      local per_image = m.per_image
      e = { name = m.name, set_level = per_image == nil, higher_is_better = m.higher_is_better ~= false, per_image = per_image,
            aggregate = m.aggregate or function(v) return v:mean():item() end,
            score = m.score or function(a, b) return per_image(a, b):mean():item() end }
    else
      fail("metrics: each entry must be a metric name, 'name:key=value', monge.metric(...) or a table { name = ..., " ..
        "per_image = function | score = function }, got " .. tostring(m))
    end
    if seen[e.name] then e.name = e.name .. "_" .. #metrics + 1 end
    seen[e.name] = true
    metrics[#metrics + 1] = e
  end
  if #metrics == 0 then fail("metrics: give at least one metric (e.g. psnr)") end
  return metrics
end

local function shape_text(t) return table.concat(t:shape(), " x ") end
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function pid()
  local f = io.open("/proc/self/stat")
  local id = f and f:read("*l"):match("^(%d+)")
  if f then f:close() end
  return id or tostring(os.time())
end

-- A progress line on stderr about every 10% (and at the end): images, rate, ETA.
local function progress_printer(total, enabled)
  local t0, next_at = monge.clock(), 0.1
  return function(done)
    if not enabled then return end
    local frac = done / total
    if frac + 1e-9 < next_at and done < total then return end
    next_at = math.floor(frac * 10 + 1e-9) / 10 + 0.1
    local dt = monge.clock() - t0
    local rate = dt > 0 and done / dt or 0
    io.stderr:write(string.format("eval: %d/%d images (%3.0f%%), %.1f images/s, ETA %s\n", done, total, 100 * frac, rate,
      done < total and rate > 0 and string.format("%.0f s", (total - done) / rate) or "0 s"))
  end
end

local function std(values) return values:numel() > 1 and values:std():item() or 0 end

local function write_outputs(o, r, clean, degraded, restored)
  local tmp = o.out .. "/.monge-eval-" .. pid()
  local existed = os.execute("test -d " .. sh_quote(o.out))
  existed = existed == 0 or existed == true
  local rc = os.execute("mkdir -p " .. sh_quote(tmp) .. " 2>/dev/null")
  if rc ~= 0 and rc ~= true then fail("cannot create the output folder " .. o.out) end
  local names = {}
  local ok, err = pcall(function()
    local grid_n = math.min(o.grid, clean:size(1))
    if grid_n > 0 then
      local rows = monge.cat({ clean:narrow(1, 1, grid_n), degraded:narrow(1, 1, grid_n), restored:narrow(1, 1, grid_n) }, 1)
      monge.image.save(monge.image.grid(rows, { nrow = grid_n }), tmp .. "/grid.png")
      names[#names + 1] = "grid.png"
    end
    report.write_json(tmp .. "/results.json", r.json)
    names[#names + 1] = "results.json"
    M.write_report(tmp, r, grid_n)
    names[#names + 1] = "report.html"
  end)
  if ok then
    for _, n in ipairs(names) do
      local moved, why = os.rename(tmp .. "/" .. n, o.out .. "/" .. n)
      if not moved then ok, err = false, "cannot move " .. n .. " into " .. o.out .. ": " .. tostring(why) break end
    end
  end
  os.execute("rm -rf " .. sh_quote(tmp))
  if not ok then
    if not existed then os.execute("rmdir " .. sh_quote(o.out) .. " 2>/dev/null") end
    fail(tostring(err))
  end
  local files = {}
  for _, n in ipairs(names) do files[n:match("^[^.]+")] = o.out .. "/" .. n end
  return files
end

--- The HTML page of an evaluation (in `dir`, embedding dir/grid.png when grid_n > 0).
function M.write_report(dir, r, grid_n)
  local j = r.json
  local rows, parts = {}, {}
  for _, name in ipairs(j.metric_order) do
    local m = j.metrics[name]
    local fmt = function(v, sd) return sd and string.format("%.4f ± %.4f", v, sd) or string.format("%.4f", v) end
    rows[#rows + 1] = { name .. (m.higher_is_better and " (↑)" or " (↓)"), fmt(m.degraded, m.degraded_std),
      fmt(m.restored, m.restored_std), string.format("%+.4f", m.gain) }
  end
  parts[#parts + 1] = string.format("<p>Map <code>%s</code> (network %s, operator %s) on <b>%s</b>: %d images, noise %s, seed %s. " ..
    "Restored in %.1f s (%.1f images/s) on %s with %d threads. monge %s (git %s).</p>",
    report.escape(j.map), report.escape(j.network or "?"), report.escape(j.operator and j.operator.name or "none"),
    report.escape(j.data), j.count, report.escape(j.noise or "as given"), tostring(j.seed or "-"), j.timing.restore_seconds,
    j.timing.images_per_second, report.escape(j.device), j.threads, report.escape(j.monge_version), report.escape(j.git_revision))
  parts[#parts + 1] = "<h2>Scores</h2>"
  local wiener = r.json.baseline == "wiener lift"
  local base_label = wiener and "the map's lift: the Wiener restoration (± sd over images)" or "degraded input (± sd over images)"
  parts[#parts + 1] = report.table({ "metric", base_label, "restored (± sd)", "gain" }, rows)
  for _, name in ipairs(j.metric_order) do
    local m = j.metrics[name]
    parts[#parts + 1] = report.bar_chart { title = name, bars = { { label = wiener and "Wiener lift" or "degraded", value = m.degraded },
      { label = "restored", value = m.restored } } }
  end
  if grid_n > 0 then
    parts[#parts + 1] = string.format("<h2>Test images</h2><p>Rows: clean, %s, restored; the first %d images.</p>",
      wiener and "the map's lift (the Wiener restoration)" or "degraded (lifted)", grid_n)
    parts[#parts + 1] = report.image(dir .. "/grid.png", "width: 100%; image-rendering: pixelated")
  end
  report.page(dir .. "/report.html", "Evaluation of " .. j.map:match("[^/]*$"), parts)
end

--- monge.evaluate{ map = m | "map.pt", clean = X, measured = Y | noise = "gaussian:sigma=0.05" | obj,
---   seed = 0, metrics = { "psnr", "ssim" }, out = dir, grid = 8, batch = 256, device = "auto",
---   threads = n, progress = true, data = "description" }
function M.evaluate(o)
  if type(o) ~= "table" then fail("monge.evaluate: expected a table of options") end
  -- Keys, types, ranges and defaults from the declaration (host/lua/script_options.cpp, shared
  -- with `monge eval`); the map, the tensors, the noise and the metrics are read here.
  local p = monge.options.check("monge.evaluate", o)
  local t0 = monge.clock()
  local metrics = resolve_metrics(o.metrics or { "psnr", "ssim" })
  local batch, grid = p.batch, p.grid
  if p.threads > 0 then monge.set_threads(p.threads) end

  local map = o.map
  if type(map) == "string" then map = monge.load_map(map, { trust_code = p.trust_code })
  elseif map == nil then fail("monge.evaluate: 'map' (a map or a map file path) is required") end
  map:to(p.device)
  local A = map.operator

  local clean = o.clean
  if not monge.is_tensor(clean) then fail("monge.evaluate: 'clean' (N x C x H x W reference images in [-1, 1]) is required") end
  if clean:dim() ~= 4 then fail("monge.evaluate: 'clean' must be N x C x H x W, got " .. shape_text(clean)) end
  local n = clean:size(1)
  if n == 0 then fail("monge.evaluate: the test set is empty") end
  clean = clean:float()

  -- The frozen degraded set: given, or A(x) plus noise drawn from one generator seeded with `seed`
  -- over the whole set (as monge.train's evaluation set: seed 0 gives the same images).
  local y, noise_text, seed = o.measured, nil, nil
  if y ~= nil then
    if o.noise ~= nil or o.seed ~= nil then fail("monge.evaluate: 'noise' and 'seed' degrade 'clean'; with 'measured' give neither") end
    if not monge.is_tensor(y) or y:dim() ~= 4 then fail("monge.evaluate: 'measured' must be an N x C x h x w tensor") end
    if y:size(1) ~= n then
      fail(string.format("monge.evaluate: %d measurements for %d clean images; they must pair one to one", y:size(1), n))
    end
    y = y:float()
  else
    seed = p.seed
    local noise = o.noise
    if type(noise) == "string" then
      noise_text = noise
      if noise ~= "none" then
        local name, params = M.parse_spec(noise, "noise")
        noise = monge.noise(name, params)
      else
        noise = nil
      end
    elseif noise ~= nil then
      noise_text = tostring(noise)
    else
      noise_text = "none"
    end
    y = monge.no_grad(function()
      local ax = A and A(clean) or clean
      return noise and noise:sample(ax, seed) or ax
    end)
  end
  local degraded = monge.no_grad(function() return (A and A:lift(y) or y):clamp(-1, 1) end)
  if shape_text(degraded) ~= shape_text(clean) then
    fail(string.format("monge.evaluate: the degraded images lifted by the map's operator (%s) are %s, the clean images %s; " ..
      "give measurements at the operator's measurement size", A and A.name or "none", shape_text(degraded), shape_text(clean)))
  end

  -- Restore, a batch at a time, with progress.
  local show = progress_printer(n, p.progress)
  local parts, t_restore = {}, monge.clock()
  for i = 1, n, batch do
    local k = math.min(batch, n - i + 1)
    parts[#parts + 1] = map:restore(y:narrow(1, i, k))
    show(i + k - 1)
  end
  local restored = #parts == 1 and parts[1] or monge.cat(parts, 1)
  t_restore = monge.clock() - t_restore
  if shape_text(restored) ~= shape_text(clean) then
    fail(string.format("monge.evaluate: the map restores %s images but the clean images are %s", shape_text(restored), shape_text(clean)))
  end

  -- Scores: per-image metrics give per-image values, their aggregate and spread; set-level ones
  -- (FID) one number per set.
  local scores, json_metrics, order = {}, {}, {}
  for _, m in ipairs(metrics) do
    local e = { higher_is_better = m.higher_is_better, set_level = m.set_level }
    if m.set_level then
      e.restored = m.score(restored, clean)
      e.degraded = m.score(degraded, clean)
    else
      local pr, pd = m.per_image(restored, clean), m.per_image(degraded, clean)
      e.restored, e.degraded = m.aggregate(pr), m.aggregate(pd)
      e.restored_std, e.degraded_std = std(pr), std(pd)
      e.per_image = { restored = pr:tolist(), degraded = pd:tolist() }
    end
    e.gain = e.restored - e.degraded
    scores[m.name] = e
    json_metrics[m.name] = e
    order[#order + 1] = m.name
  end

  local seconds = monge.clock() - t0
  local map_path = type(o.map) == "string" and o.map or map.path
  local op_spec = A and { name = A.name, params = A.params and A:params() or nil } or nil
  local result = {
    map = map_path, network = map.network, operator = op_spec, map_notes = map.notes, data = o.data or "tensors",
    noise = noise_text, seed = seed, count = n, shape = clean:shape(), metrics = json_metrics, metric_order = order,
    timing = { seconds = seconds, restore_seconds = t_restore, images_per_second = n / math.max(t_restore, 1e-9) },
    device = map.device, threads = monge.threads(), monge_version = monge.version, git_revision = monge.git_revision,
    -- What the "degraded" column is: the map's lift of the measurements, which for a map trained on
    -- the Wiener lift is the unpaired Wiener restoration, not the raw input.
    baseline = (A and pcall(monge.wiener_info, A)) and "wiener lift" or "degraded",
  }
  local r = { json = result, scores = scores, count = n, seconds = seconds, restored = restored, degraded = degraded }
  if o.out then
    r.files = write_outputs({ out = o.out, grid = grid }, r, clean, degraded, restored)
  end
  -- What a caller reads: { count, seconds, metrics = { psnr = { restored, degraded, gain, ... } }, files, ... }
  return { count = n, seconds = r.seconds, metrics = scores, order = order, seed = seed, noise = noise_text,
           restored = restored, degraded = degraded, files = r.files, results = result }
end

return M
