-- `monge calibrate --clean SET --measured SET --operator SPEC [...]`: the command line of
-- monge.calibrate (calibrate.lua). Run by the host with the command's arguments; `monge calibrate
-- --help` is printed by the host. Exit codes: 2 for a bad command line, 1 for bad input.
local monge = require "monge"
local calibrate = require "monge.calibrate"
local cli = require "monge.cli"
local evaluate = require "monge.evaluate"
local report = require "monge.report"
local usage = cli.usage("calibrate")

-- Flags, types, ranges and defaults from the declaration (host/lua/script_options.cpp).
local o, positional, given = cli.options("calibrate", { ... })
if #positional > 0 then usage("unexpected argument '" .. positional[1] .. "' (every input is an option: --clean, --measured)") end
local images, iterations, seed = o.images, o.iterations, o.seed
local threads = o.threads > 0 and o.threads or nil
if (given.noise or given.seed) and not given.degrade then usage("--noise and --seed go with --degrade (they simulate the measured set)") end

-- What to estimate: the blur's width by default; a downsampling factor from the image sizes.
local function spec_of(flag, text)
  local ok, name, params = pcall(evaluate.parse_spec, text, flag)
  if not ok then usage(tostring(name)) end
  return name, params
end
local op_name, op_params = spec_of("--operator", o.operator)
local defaults = { gaussian_blur = { "sigma", { 0.3, 6 } } }
local estimate, range = given.estimate and o.estimate or nil, nil
if estimate == nil and defaults[op_name] then estimate, range = defaults[op_name][1], defaults[op_name][2] end
if estimate == "none" then estimate = nil end
if given.range then
  range = o.range
  if not (#range == 2 and range[1] < range[2]) then
    usage("--range needs LO,HI with LO < HI, got '" .. table.concat(range, ",") .. "'")
  end
  if not estimate then usage("--range goes with --estimate (the parameter to search for)") end
end
if estimate and op_params[estimate] ~= nil then
  usage("--operator gives " .. estimate .. "=" .. tostring(op_params[estimate]) .. " and --estimate asks for it; give one")
end
if estimate and not range and op_name ~= "downsample" then
  usage("--range LO,HI is required to estimate " .. estimate .. " of " .. op_name)
end

local function set(flag)
  local scheme, rest, limit = cli.split_set(o[flag], "--" .. flag, usage)
  if not scheme then scheme, rest = "folder", o[flag] end
  return cli.load_set(scheme, rest, limit or images)
end

cli.run("calibrate", function()
  if threads then monge.set_threads(threads) end
  local t0 = monge.clock()
  local clean, measured = set("clean"), set("measured")
  local simulated = ""
  if given.degrade then
    local name, params = spec_of("--degrade", o.degrade)
    measured = monge.no_grad(function() return monge.operator(name, params)(measured) end)
    if given.noise then
      local nname, nparams = spec_of("--noise", o.noise)
      measured = monge.noise(nname, nparams):sample(measured, seed)
    end
    simulated = string.format(" (simulated: %s%s)", o.degrade, given.noise and (", " .. o.noise .. ", seed " .. seed) or "")
  end
  local factor
  if op_name == "downsample" and (estimate == nil or estimate == "factor") and op_params.factor == nil then
    factor = calibrate.factor_from_shapes(clean, measured)
    op_params.factor = factor
    estimate = nil
  end
  local c = calibrate.calibrate { clean = clean, measured = measured, operator = op_name, params = op_params,
                                  parameter = estimate, range = range, images = images, iterations = iterations }
  local params = {}
  for k, v in pairs(op_params) do params[k] = v end
  if estimate then params[estimate] = c.value end
  local keys = {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = params[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "number" and string.format("%.6g", v) or tostring(v))
  end
  local op_spec = op_name .. (#parts > 0 and ":" .. table.concat(parts, ",") or "")
  local noise_spec = string.format("gaussian:sigma=%.4g", c.noise_sigma)
  local used_clean, used_measured = math.min(images, clean:size(1)), math.min(images, measured:size(1))
  local what = estimate and string.format("%s %s = %.4g (searched %g to %g)", op_name, estimate, c.value, range[1], range[2])
    or factor and string.format("%s factor = %d (from the image sizes)", op_name, factor)
    or op_name .. " as given"
  print(string.format("calibrate: %s, noise sigma = %.4g; %d evaluation%s on %d clean and %d measured images%s, %.1f s",
    what, c.noise_sigma, #c.evaluations, #c.evaluations == 1 and "" or "s", used_clean, used_measured, simulated, monge.clock() - t0))
  print("  operator " .. op_spec)
  print("  noise    " .. noise_spec .. "  (white Gaussian assumed; for other noise, its standard deviation)")
  if given.json then
    local evals = {}
    for i, e in ipairs(c.evaluations) do evals[i] = { value = e.value, noise_sigma = e.noise_sigma, loss = e.loss } end
    report.write_json(o.json, {
      operator = op_name, params = params, estimate = estimate, value = c.value, factor = factor, range = range,
      noise_sigma = c.noise_sigma, loss = c.loss, operator_spec = op_spec, noise_spec = noise_spec,
      clean = o.clean, measured = o.measured, degrade = given.degrade and o.degrade or nil, noise = given.noise and o.noise or nil, images = { clean = used_clean, measured = used_measured },
      evaluations = evals,
    })
    print("wrote " .. o.json)
  end
end)
