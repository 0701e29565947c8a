-- monge.json: encode and decode through nlohmann-json; report.json's text unchanged from the Lua
-- encoder it replaced; hostile text gives a clean error, never a crash.
local monge = require "monge"
local report = require "monge.report"
local json = monge.json

local function fails(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "'")
  assert(tostring(err):find(pattern, 1, true), tostring(err))
  return err
end

-- Encoding: one line in the layout of monge's files, or indented; keys sorted.
assert(json.encode { b = { 1, 2.5, "x" }, a = true } == '{"a": true, "b": [1, 2.5, "x"]}', json.encode { b = { 1 }, a = true })
assert(json.encode({ k = { 1 } }, 2) == '{\n  "k": [\n    1\n  ]\n}')
assert(json.encode({}, 2) == "[]" and json.encode {} == "[]", "the empty table is an empty array")
assert(json.encode "s" == '"s"' and json.encode(3) == "3" and json.encode(false) == "false" and json.encode(nil) == "null")
-- Arrays: keys exactly 1..n; anything else is an object whose number keys are written as text.
assert(json.encode { 1, 2, 3 } == "[1, 2, 3]")
assert(json.encode { [1] = "a", [3] = "c" } == '{"1": "a", "3": "c"}', json.encode { [1] = "a", [3] = "c" })
assert(json.encode { "a", x = 1 } == '{"1": "a", "x": 1}', json.encode { "a", x = 1 })
assert(json.encode { [1.5] = true } == '{"1.5": true}')
-- Numbers: integers below 2^53, else 10 significant digits; NaN and infinities are null.
assert(json.encode { 0 / 0, math.huge, -math.huge } == "[null, null, null]")
assert(json.encode(1 / 3) == "0.3333333333" and json.encode(0.99999999999) == "1" and json.encode(-2 ^ 40) == "-1099511627776")
assert(json.encode(1e-5) == "1e-05" and json.encode(2.5e20) == "2.5e+20" and json.encode(-0.0) == "0", json.encode(1e-5))
-- Strings: JSON's escapes; invalid UTF-8 becomes U+FFFD.
assert(json.encode 'q"\\\n\1' == '"q\\"\\\\\\n\\u0001"', json.encode 'q"\\\n\1')
assert(json.encode "caf\195\169" == '"caf\195\169"')
assert(json.encode "a\255b" == '"a\239\191\189b"', json.encode "a\255b")
-- What JSON cannot hold is an error, not a crash.
fails("cannot encode a function", json.encode, { f = print })
fails("table key must be a string or a number", json.encode, { [true] = 1 })
local cycle = {}
cycle.self = cycle
fails("nested more than", json.encode, cycle)
fails("indent must be 0 to 16", json.encode, {}, -1)

-- report.json: the text of the Lua encoder it replaced (kept here as the reference).
local function old_encode(v, indent)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.10g", v)
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
      return named[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  local pad, inner = indent, indent .. "  "
  if #v > 0 or next(v) == nil then
    local items = {}
    for _, x in ipairs(v) do items[#items + 1] = old_encode(x, inner) end
    if #items == 0 then return "[]" end
    return "[\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. pad .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local items = {}
  for _, k in ipairs(keys) do items[#items + 1] = old_encode(k, inner) .. ": " .. old_encode(v[k], inner) end
  return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. pad .. "}"
end
local r = monge.rand({ 400 }, { seed = 5, dtype = "float64" }):tolist()
local values = {}
for i = 1, 400 do
  -- Magnitudes from 1e-9 to 1e9, both signs, whole and not; 10 digits and fewer.
  local x = (r[i] - 0.5) * 10 ^ (i % 19 - 9)
  values[#values + 1] = (i % 3 == 0) and math.floor(x) or (i % 5 == 0) and tonumber(string.format("%.3g", x)) or x
end
local sample = {
  name = "a \"report\"\twith\r\nescapes", values = values, empty = {}, nested = { { 1, { 2, { 3 } } }, { x = { y = "z" } } },
  flags = { yes = true, no = false }, missing = 0 / 0, big = 2 ^ 60, tiny = -1e-300, ["k\1ey"] = "v",
}
local expected = old_encode(sample, "") .. "\n"
local got = report.json(sample)
if got ~= expected then
  for i = 1, #got do
    if got:sub(i, i) ~= expected:sub(i, i) then error("report.json differs at byte " .. i .. ": " .. got:sub(i - 40, i + 40) .. " vs " .. expected:sub(i - 40, i + 40)) end
  end
  error("report.json differs in length")
end

-- Decoding.
local v = json.decode '{"a": [1, 2.5, "x", true, false, {"b": null}], "s": "caf\\u00e9 \\ud83d\\ude00", "n": -1e-3}'
assert(#v.a == 6 and v.a[1] == 1 and v.a[2] == 2.5 and v.a[3] == "x" and v.a[4] == true and v.a[5] == false)
assert(type(v.a[6]) == "table" and next(v.a[6]) == nil, "null decodes to nil: the member is absent")
assert(v.s == "caf\195\169 \240\159\152\128" and v.n == -0.001, v.s)
assert(json.decode "3" == 3 and json.decode '"x"' == "x" and json.decode "null" == nil and json.decode " [] " ~= nil)
assert(json.decode(json.encode(sample)).name == sample.name)
local round = json.decode(json.encode(values))
for i = 1, #values do assert(round[i] == tonumber(string.format("%.10g", values[i])), i) end
-- A log.jsonl line as the trainer writes it.
local rec = json.decode '{"iter": 10, "time": 0.5, "loss_map": null, "loss_potential": -0.25}'
assert(rec.iter == 10 and rec.time == 0.5 and rec.loss_map == nil and rec.loss_potential == -0.25)

-- Hostile text: a clean Lua error naming monge.json.decode, never a crash.
for _, text in ipairs {
  '"\\x"', '"\\u12"', '"\\u12zz"', '"\\ud800"', '"\\ud800\\u0041"', '"\\"', '"a\255b"', '"\192\128"', '"\237\160\128"',
  '"\244\144\128\128"', '"a\0b"', '{"a": 1', '{"a" 1}', "[1,]", "[1 2]", "01", "1e400", "-", "NaN", "Infinity", "", " ",
  "nul", "[1] x", "{\"a\": 1}}", "\239\187\191[1", '"tab\there"', "{1: 2}", "'x'",
} do
  fails("monge.json.decode", json.decode, text)
end
fails("monge.json.decode", json.decode, string.rep("[", 100000))              -- unbalanced, very deep
fails("nested more than", json.decode, string.rep("[", 250) .. string.rep("]", 250))  -- balanced, too deep
fails("nested more than", json.decode, string.rep('{"a":', 250) .. "1" .. string.rep("}", 250))
assert(#json.decode(string.rep("[", 150) .. string.rep("]", 150)) == 1)      -- deep enough for any real file
fails("bad argument", json.decode, {})
-- monge.json.null keeps a member with no value (nil leaves it out), in objects and arrays.
assert(json.encode { a = json.null, b = 1 } == '{"a": null, "b": 1}', json.encode { a = json.null, b = 1 })
assert(json.encode { a = nil, b = 1 } == '{"b": 1}')
assert(json.encode { 1, json.null, 3 } == "[1, null, 3]")
assert(json.decode(json.encode { a = json.null }).a == nil)
fails("cannot encode a userdata", json.encode, { a = io.stdout })
print("ok")
