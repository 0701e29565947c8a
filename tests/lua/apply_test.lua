-- monge.apply from Lua: a trained map on a synthetic image file, tiled exactly, with the image
-- helpers it relies on (synthetic, header, save with bits); errors reach Lua as messages.
local monge = require "monge"
local out = (arg[1] or ".") .. "/apply_test"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")

-- A map: two training iterations of a small unet on random 32 x 32 images.
local x = monge.rand({ 16, 1, 32, 32 }, { seed = 1 }) * 2 - 1
local A = monge.operator("gaussian_blur", { size = 5, sigma = 1 })
local run = monge.train {
  operator = A, clean = x, measured = x, cost = monge.cost("quadratic", { operator = A }),
  map = monge.network("unet", { channels = 4, depth = 2 }), potential = monge.network("potential", { channels = 4 }),
  solver = monge.solver("uotip", {}), iters = 2, batch = 4, out = out .. "/run", progress = false,
}

-- A synthetic tiled BigTIFF, restored in small tiles; the result equals whole-image inference
-- (in fp32, as map:restore runs by default).
monge.image.synthetic { file = out .. "/in.tif[tile,bigtiff,tile_width=64,tile_height=64]", width = 150, height = 97, seed = 3 }
local h = monge.image.header(out .. "/in.tif")
assert(h.width == 150 and h.height == 97 and h.bands == 1 and h.format == "uchar" and not h.alpha)
local r = monge.apply { map = run.map, input = out .. "/in.tif", output = out .. "/out.tif", tile = 32, depth = "float",
                        precision = "fp32" }
assert(r.width == 150 and r.height == 97 and r.exact and r.halo == 30 and r.precision == "fp32", r.plan)
local y = monge.image.load(out .. "/in.tif"):unsqueeze(1)
local whole = run.map:restore(y)[1]
local diff = (monge.image.load(out .. "/out.tif") - whole):abs():max():item()
assert(diff <= 1e-4, "tiled differs from whole-image inference by " .. diff)

-- A map file path works as well; 16-bit output.
r = monge.apply { map = run.map_path, input = out .. "/in.tif", output = out .. "/out16.png", depth = "16" }
assert(monge.image.header(out .. "/out16.png").format == "ushort")

-- Precision: auto (the default) is bf16 exactly where the CPU has it natively; bf16 elsewhere is an error.
local _, native = monge.cpu_bf16()
local chosen = native and "bf16" or "fp32"
r = monge.apply { map = run.map, input = out .. "/in.tif", output = out .. "/auto.png" }
assert(r.precision == chosen, "auto chose " .. tostring(r.precision) .. " where native bf16 is " .. tostring(native))
local ok, err = pcall(monge.apply, { map = run.map, input = out .. "/in.tif", output = out .. "/p.png", precision = "fp16" })
assert(not ok and err:find("monge.apply: parameter 'precision' expects one of auto|fp32|bf16, got \"fp16\"", 1, true), err)
if native then
  local fused = run.map:restore(y, { precision = "bf16" })
  local gap = (fused - whole):abs():max():item()
  assert(gap > 0 and gap < 0.05, "map:restore in bf16 differs from fp32 by " .. gap)
  -- MONGE_ONEDNN=0 (monge.setenv, read at each call) runs LibTorch's bf16 ops instead of the
  -- unet's fused oneDNN graph: another rounding, as close to fp32.
  monge.setenv("MONGE_ONEDNN", "0")
  local ops = run.map:restore(y, { precision = "bf16" })
  monge.setenv("MONGE_ONEDNN", nil)
  assert(os.getenv("MONGE_ONEDNN") == nil)
  local ops_gap = (ops - whole):abs():max():item()
  assert((ops - fused):abs():max():item() > 0, "MONGE_ONEDNN=0 changed nothing")
  assert(ops_gap > 0 and ops_gap < 0.05, "LibTorch's bf16 differs from fp32 by " .. ops_gap)
  ok, err = pcall(monge.setenv, "A=B", "1")
  assert(not ok and err:find("monge.setenv: not a variable name: 'A=B'", 1, true), err)
else
  ok, err = pcall(run.map.restore, run.map, y, { precision = "bf16" })
  assert(not ok and err:find("map:restore: precision 'bf16' needs bfloat16 convolutions", 1, true), err)
end

-- Errors are Lua errors with the reason; nothing is left behind.
ok, err = pcall(monge.apply, { map = run.map, input = out .. "/in.tif", output = out .. "/x.jpg", depth = "16" })
assert(not ok and err:find("JPEG holds 8%-bit images only"), err)
assert(err:find('choose depth = "8"', 1, true), "a Lua caller is told the Lua key, not the flag: " .. err)
ok, err = pcall(monge.apply, { map = run.map, input = out .. "/in.tif", output = out .. "/z.png", max_pixels = 100 })
assert(not ok and err:find("pixels is more than max_pixels = 100", 1, true), err)
ok, err = pcall(monge.apply, { map = run.map, input = out .. "/in.tif", output = out .. "/y.png", tiel = 3 })
assert(not ok and err:find("did you mean 'tile'"), err)
assert(not io.open(out .. "/x.jpg") and not io.open(out .. "/y.png"))


-- monge.batch over a folder: resumable, the failed file recorded.
os.execute("mkdir -p '" .. out .. "/batch_in/sub'")
for i = 1, 3 do monge.image.save(monge.rand({ 1, 20, 20 }, { seed = i }) * 2 - 1, out .. "/batch_in/sub/" .. i .. ".png") end
local f = assert(io.open(out .. "/batch_in/bad.png", "w"))
f:write("not a png")
f:close()
local b = monge.batch { map = run.map, inputs = { out .. "/batch_in" }, out = out .. "/batch_out" }
assert(b.found == 4 and b.ok == 3 and b.failed == 1, string.format("%d found, %d ok, %d failed", b.found, b.ok, b.failed))
assert(b.precision == chosen, "batch ran in " .. tostring(b.precision))
assert(monge.image.header(out .. "/batch_out/sub/2.png").width == 20)
b = monge.batch { map = run.map_path, inputs = out .. "/batch_in", out = out .. "/batch_out" }
assert(b.already == 3 and b.failed_before == 1 and b.ok == 0)
print("apply_test: batch ok")
