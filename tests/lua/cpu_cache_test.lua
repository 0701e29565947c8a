-- The CPU tensor cache as the monge executable installs it (host/core/cpu_cache.hpp), seen from
-- Lua: on by default, a freed large tensor's block is reused, the limit can be changed and 0
-- keeps nothing; bad limits are refused.
local monge = require "monge"

local s = monge.cpu_cache()
assert(s.installed, "the monge executable installs the CPU tensor cache")
local wanted = tonumber(os.getenv("MONGE_CPU_CACHE_MB") or "1024")
assert(s.limit_mb == wanted, "default limit 1024 MiB (or MONGE_CPU_CACHE_MB), got " .. s.limit_mb)

local function big() return monge.zeros { 1, 4, 512, 512 } end  -- 4 MiB
local t = big()
t = nil
collectgarbage(); collectgarbage()
local before = monge.cpu_cache()
assert(before.cached_mb >= 4, "a freed 4 MiB tensor is cached, cached " .. before.cached_mb .. " MiB")
local u = big()
local after = monge.cpu_cache()
assert(after.hits == before.hits + 1 and after.misses == before.misses,
  string.format("reused: hits %d -> %d, misses %d -> %d", before.hits, after.hits, before.misses, after.misses))
u = nil
collectgarbage(); collectgarbage()

local zero = monge.cpu_cache { limit_mb = 0 }
assert(zero.limit_mb == 0 and zero.cached_mb == 0, "limit 0 gives every cached block back")
local v = big()
v = nil
collectgarbage(); collectgarbage()
assert(monge.cpu_cache().cached_mb == 0, "limit 0 caches nothing")
assert(monge.cpu_cache { limit_mb = 256 }.limit_mb == 256)

for _, bad in ipairs { -1, 1.5, "lots" } do
  local ok, err = pcall(monge.cpu_cache, { limit_mb = bad })
  assert(not ok and tostring(err):find("limit_mb"), tostring(err))
end
local ok, err = pcall(monge.cpu_cache, { limit = 5 })
assert(not ok and tostring(err):find("limit_mb"), tostring(err))
print("cpu_cache_test: ok")
