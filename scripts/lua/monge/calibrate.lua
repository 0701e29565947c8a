-- Calibration from unpaired data: estimates an operator's unknown parameter and the noise level from
-- a set of clean images and a set of measured ones, never paired, by matching power spectra.
--
--   local c = monge.calibrate { clean = X, measured = Y, operator = "gaussian_blur",
--                               params = { size = 13 }, parameter = "sigma", range = { 0.3, 6 } }
--   print(c.value, c.noise_sigma)          -- e.g. 1.49 and 0.0502
--   local A = c.operator                    -- gaussian_blur at the estimated sigma
--
-- The model: Y = A_theta(X') + n with X' drawn like X and n white Gaussian noise of variance
-- sigma^2. Then the measured set's averaged periodogram is the clean set's, passed through the
-- operator, plus sigma^2 at every frequency. For a candidate theta the clean images are degraded
-- by the operator itself (so its padding and borders are those of the real degradation) and
-- their spectrum S_theta is compared with the measured one S_Y in log space:
--   loss(theta, sigma) = mean over frequencies of (log S_Y - log(S_theta + sigma^2))^2,
-- minimised over sigma (golden section on log sigma) for each theta, and over theta by golden
-- section on the range (the loss is smooth and, for a blur width, unimodal in practice). A
-- downsampling factor needs no search: it is the ratio of the image sizes (`factor_from_shapes`).
-- Gaussian noise is assumed; for other noise the estimate is the noise's standard deviation.
local monge = require "monge.core"
local M = {}

local golden = (math.sqrt(5) - 1) / 2

-- Minimises f on [a, b] by golden-section search to a relative tolerance; returns x, f(x).
local function minimise(f, a, b, iterations)
  local c, d = b - golden * (b - a), a + golden * (b - a)
  local fc, fd = f(c), f(d)
  for _ = 1, iterations do
    if fc < fd then
      b, d, fd = d, c, fc
      c = b - golden * (b - a)
      fc = f(c)
    else
      a, c, fc = c, d, fd
      d = a + golden * (b - a)
      fd = f(d)
    end
  end
  if fc < fd then return c, fc end
  return d, fd
end

-- The best noise level for spectra S_Y and S (same grid): sigma minimising the log-spectrum loss.
local function fit_noise(log_sy, s)
  local function loss(log_sigma)
    local v = math.exp(2 * log_sigma)
    local d = (s + v):log() - log_sy
    return (d * d):mean():item()
  end
  local log_sigma, l = minimise(loss, math.log(1e-4), math.log(1.0), 30)
  return math.exp(log_sigma), l
end

--- Calibrates. Options:
---   clean, measured   N x C x H x W tensors in [-1, 1] (unpaired; measured at the measurement size)
---   operator          a plugin name (e.g. "gaussian_blur")
---   params            the operator's other parameters (fixed), default {}
---   parameter         the name of the parameter to estimate (e.g. "sigma"); nil: the operator is
---                     known (params), estimate the noise level only
---   range             { lo, hi } for it
---   images            how many images of each set to use (default 2000)
---   iterations        golden-section steps over the range (default 24: the range shrinks 0.618^24, 1e-5)
--- Returns { value (nil without 'parameter'), noise_sigma, loss, operator (the plugin at the
--- estimate), evaluations }.
function M.calibrate(o)
  assert(type(o) == "table", "monge.calibrate: expected a table of options")
  -- Keys, types, ranges and defaults from the declaration (host/lua/script_options.cpp, shared
  -- with `monge calibrate`); the tensors and the operator's parameters are read here.
  local p = monge.options.check("monge.calibrate", o)
  if not (monge.is_tensor(o.clean) and monge.is_tensor(o.measured)) then
    error("monge.calibrate: 'clean' and 'measured' must be tensors of images (N x C x H x W)", 2)
  end
  local range = o.range
  if o.parameter == nil then
    if range ~= nil then error("monge.calibrate: 'range' goes with 'parameter' (the parameter to estimate)", 2) end
  elseif type(range) ~= "table" or type(range[1]) ~= "number" or type(range[2]) ~= "number" or not (range[1] < range[2]) then
    error("monge.calibrate: 'range' must be { lo, hi } with lo < hi", 2)
  end
  local n = p.images
  local clean = o.clean:narrow(1, 1, math.min(n, o.clean:size(1))):to("float32")
  local measured = o.measured:narrow(1, 1, math.min(n, o.measured:size(1))):to("float32")
  local function make(value)
    local params = {}
    for k, v in pairs(o.params or {}) do params[k] = v end
    if o.parameter then params[o.parameter] = value end
    return monge.operator(o.operator, params)
  end
  local probe = make(range and (range[1] + range[2]) / 2)(clean:narrow(1, 1, 1))
  if probe:size(3) ~= measured:size(3) or probe:size(4) ~= measured:size(4) then
    error(string.format("monge.calibrate: %s gives %dx%d measurements of the clean images, the measured set is %dx%d; " ..
      "give measurements of the operator's size (for downsampling, see factor_from_shapes)", o.operator, probe:size(4), probe:size(3),
      measured:size(4), measured:size(3)), 2)
  end
  -- The patch side is the measured images' (both spectra on one grid).
  local patch = math.min(64, measured:size(3), measured:size(4))
  local log_sy = monge.power_spectrum(measured, { patch = patch }):log()
  local evaluations = {}
  local function loss(value)
    local A = make(value)
    local s = monge.power_spectrum(monge.no_grad(function() return A(clean) end), { patch = patch })
    local sigma, l = fit_noise(log_sy, s)
    evaluations[#evaluations + 1] = { value = value, noise_sigma = sigma, loss = l }
    return l
  end
  if not o.parameter then  -- the operator as given: the noise level alone
    local l = loss(nil)
    return { noise_sigma = evaluations[1].noise_sigma, loss = l, operator = make(nil), evaluations = evaluations }
  end
  local value, l = minimise(loss, range[1], range[2], p.iterations)
  local best
  for _, e in ipairs(evaluations) do
    if e.value == value then best = e end
  end
  local edge = (range[2] - range[1]) * 1e-3
  if value - range[1] < edge or range[2] - value < edge then
    io.stderr:write(string.format("monge.calibrate: the estimate %s = %g is at the edge of the range [%g, %g]; widen it\n",
      o.parameter, value, range[1], range[2]))
  end
  return { value = value, noise_sigma = best.noise_sigma, loss = l, operator = make(value), evaluations = evaluations }
end

--- The downsampling factor of unpaired sets: the ratio of the clean images' side to the measured
--- ones' (the same on both axes, a whole number), or an error saying why there is none.
function M.factor_from_shapes(clean, measured)
  local fh, fw = clean:size(3) / measured:size(3), clean:size(4) / measured:size(4)
  if fh ~= fw or fh ~= math.floor(fh) or fh < 1 then
    error(string.format("monge.calibrate: clean images %dx%d and measured %dx%d are not related by one whole downsampling factor",
      clean:size(4), clean:size(3), measured:size(4), measured:size(3)), 2)
  end
  return fh
end

return M
