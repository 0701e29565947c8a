-- Command-line helpers for the subcommands written in Lua (eval_cli.lua, calibrate_cli.lua): their
-- declared options parsed, usage errors, and one reader of image-set specs.
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

--- The command line `args` of subcommand `cmd`, parsed by its declared options (monge.options.parse;
--- the declarations are in host/lua/script_options.cpp, which also give --help and docs/cli.md's
--- table): the options by key (typed, the defaults filled in), the positional arguments and the set
--- of options given. A bad command line (an unknown option, with the nearest known one; a missing
--- or bad value; a required option missing) exits with status 2, the message naming the flag.
function M.options(cmd, args)
  local o, positional, given = monge.options.parse(cmd, args)
  if not o then
    local msg = positional:gsub("; see monge %S+ %-%-help$", "")
    io.stderr:write("monge: " .. msg .. "\nRun 'monge " .. cmd .. " --help' for usage.\n")
    os.exit(2)
  end
  return o, positional, given
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
