-- Command-line helpers for the subcommands written in Lua (eval_cli.lua, calibrate_cli.lua): one
-- option parser with "did you mean", and one reader of image-set specs.
local monge = require "monge"
local M = {}

--- A usage-error function for subcommand `cmd`: prints "monge: CMD: MSG" and a pointer to --help,
--- and exits with status 2 (a bad command line).
function M.usage(cmd)
  return function(msg)
    io.stderr:write("monge: " .. cmd .. ": " .. msg .. "\nRun 'monge " .. cmd .. " --help' for usage.\n")
    os.exit(2)
  end
end

--- Parses `args` against `options` ({ ["--name"] = true for an option taking a value, false for a
--- flag; `repeat_` lists options that may repeat, collected into lists}). Returns the values by name
--- without the dashes (flags: true) and the positional arguments. Unknown options go to `usage`
--- with the nearest known one.
function M.parse(args, options, usage, repeat_)
  local o, positional, i = {}, {}, 1
  local repeats = {}
  for _, name in ipairs(repeat_ or {}) do repeats[name] = true end
  while i <= #args do
    local a = args[i]
    if options[a] ~= nil then
      local key = a:sub(3)
      if options[a] then
        if i == #args then usage(a .. " needs a value") end
        if repeats[a] then
          o[key] = o[key] or {}
          table.insert(o[key], args[i + 1])
        else
          o[key] = args[i + 1]
        end
        i = i + 1
      else
        o[key] = true
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local names = {}
      for name in pairs(options) do names[#names + 1] = name end
      table.sort(names)
      local best = monge.did_you_mean(a, names)
      usage("unknown option '" .. a .. "'" .. (best and " (did you mean '" .. best .. "'?)" or ""))
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return o, positional
end

--- `o[name]` as a whole number (nil when absent); anything else goes to `usage`.
function M.count(o, name, usage, allow_zero)
  if o[name] == nil then return nil end
  local n = tonumber(o[name])
  if not n or n % 1 ~= 0 or n < (allow_zero and 0 or 1) then
    usage("--" .. name .. " needs " .. (allow_zero and "a number (0 or more)" or "a positive integer") .. ", got '" .. o[name] .. "'")
  end
  return n
end

M.set_specs = "fashion-mnist:test[:N], fashion-mnist:train[:N], idx:FILE[:N] or folder:DIR[:N]"

--- Splits an image-set spec SCHEME:ARG[:N] into scheme, argument and count (nil when absent);
--- returns nil when `spec` has no known scheme. Bad counts and splits go to `usage`.
function M.split_set(spec, flag, usage)
  local scheme, rest = spec:match("^([%a-]+):(.*)$")
  if not scheme or not ({ ["fashion-mnist"] = true, idx = true, folder = true })[scheme] then return nil end
  local limit
  if rest:match(":%d+$") then
    rest, limit = rest:match("^(.*):(%d+)$")
    limit = tonumber(limit)
    if limit < 1 then usage(flag .. " " .. spec .. ": the image count must be at least 1") end
  end
  if scheme == "fashion-mnist" and rest ~= "test" and rest ~= "train" then
    usage(flag .. " " .. spec .. ": the Fashion-MNIST split is test or train")
  end
  return scheme, rest, limit
end

--- The images (N x C x H x W in [-1, 1]) of a set spec split by split_set.
function M.load_set(scheme, rest, limit)
  if scheme == "fashion-mnist" then return monge.data.fashion_mnist { split = rest, limit = limit }.images end
  if scheme == "idx" then return monge.data.idx { images = rest, limit = limit }.images end
  return monge.data.images { dir = rest, limit = limit }.images
end

--- Runs `body` and turns a Lua error into "monge: error: CMD: message" and exit status 1 (bad input
--- or a failed computation), without the Lua file and line a user has no use for.
function M.run(cmd, body)
  local ok, err = xpcall(body, function(e) return e end)
  if not ok then
    local msg = tostring(err):gsub("^[^%s]-%.lua:%d+: ", ""):gsub("^monge%.[%w_]+: ", "")
    io.stderr:write("monge: error: " .. cmd .. ": " .. msg .. "\n")
    os.exit(1)
  end
end

return M
