-- Images from Lua: grids, PNG round trip through libvips, no partial files on failure.
local monge = require "monge"
local out_dir = arg[1] or "."

local batch = monge.rand({ 5, 1, 6, 4 }, { seed = 3 }) * 2 - 1
local g = monge.image.grid(batch, { nrow = 2, padding = 1, pad_value = -1 })
assert(table.concat(g:shape(), ",") == "1,22,11", table.concat(g:shape(), ","))

local path = out_dir .. "/image_test_grid.png"
os.remove(path)
monge.image.save(g, path)
local back = monge.image.load(path)
assert(table.concat(back:shape(), ",") == "1,22,11")
assert((back - g):abs():max():item() <= 1 / 255 + 1e-6)
os.remove(path)

local ok, err = pcall(monge.image.save, g, "/nonexistent-dir/grid.png")
assert(not ok and err:find("does not exist"), err)
ok, err = pcall(monge.image.load, out_dir .. "/no-such-image.png")
assert(not ok and err:find("no such image file"), err)
-- A corrupt PNG is a clear error, not a crash.
local f = assert(io.open(out_dir .. "/corrupt.png", "wb"))
f:write("\137PNG\r\n\26\n" .. string.rep("x", 100))
f:close()
ok, err = pcall(monge.image.load, out_dir .. "/corrupt.png")
assert(not ok and err:find("corrupt.png"), err)
os.remove(out_dir .. "/corrupt.png")
print("image_test: ok")
