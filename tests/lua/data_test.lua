-- Fashion-MNIST through the Lua API, and the errors for missing files.
local monge = require "monge"

local fm = monge.data.fashion_mnist { split = "test", limit = 32 }
assert(fm.count == 32)
assert(table.concat(fm.images:shape(), ",") == "32,1,28,28")
assert(fm.images:dtype() == "float32")
assert(fm.images:min():item() >= -1 and fm.images:max():item() <= 1)
assert(fm.labels:dtype() == "int64" and fm.labels[1]:item() == 9)

local ok, err = pcall(monge.data.fashion_mnist, { split = "validation" })
assert(not ok and err:find("split must be 'train' or 'test', got validation"), err)
ok, err = pcall(monge.data.idx, { images = "/nonexistent/train-images.gz" })
assert(not ok and err:find("/nonexistent/train%-images%.gz: no such IDX file"), err)
ok, err = pcall(monge.data.idx, { image = "x" })
assert(not ok and err:find("unknown option 'image' %(did you mean 'images'%?%)"), err)

-- Class filtering.
local two = monge.data.fashion_mnist { split = "test", limit = 500, classes = { 0, 9 } }
assert(two.count > 50 and two.count < 250, two.count)
assert(two.labels:eq(0):sum():item() + two.labels:eq(9):sum():item() == two.count)
ok, err = pcall(monge.data.classes, two, { 4 })
assert(not ok and err:find("no sample has any of the listed labels"), err)

-- Disjoint, covering, seeded splits (0-based indices for index_select).
local parts = monge.data.split(100, { 0.5, 0.3 }, 7)
assert(#parts == 2 and parts[1]:numel() == 50 and parts[2]:numel() == 30)
local seen = monge.zeros { 100 }
for _, p in ipairs(parts) do
  for _, i in ipairs(p:tolist()) do seen[i + 1] = seen[i + 1]:item() + 1 end
end
assert(seen:max():item() == 1 and seen:sum():item() == 80, "split parts overlap")
assert(monge.data.split(100, { 0.5, 0.3 }, 7)[1]:equal(parts[1]), "split is not deterministic per seed")
assert(not monge.data.split(100, { 0.5, 0.3 }, 8)[1]:equal(parts[1]), "the seed does not change the split")
local counts = monge.data.split(10, { 4, 6 })
assert(counts[1]:numel() == 4 and counts[2]:numel() == 6)
ok, err = pcall(monge.data.split, 10, { 0.7, 0.6 })
assert(not ok and err:find("fractions must sum to at most 1"), err)

-- Re-weighting: class 0 four times as frequent as class 9, other classes dropped.
local fm = monge.data.fashion_mnist { split = "test", limit = 1000 }
local idx = monge.data.reweight { labels = fm.labels, weights = { [0] = 4, [9] = 1 }, count = 5000, seed = 1 }
local picked = fm.labels:index_select(1, idx)
local zeros, nines = picked:eq(0):sum():item(), picked:eq(9):sum():item()
assert(zeros + nines == 5000, "classes without weight were drawn")
assert(math.abs(zeros / 5000 - 0.8) < 0.03, zeros)
ok, err = pcall(monge.data.reweight, { labels = fm.labels, weights = { [42] = 1 } })
assert(not ok and err:find("class 42 has weight 1"), err)

-- Mixtures: about 3:1 from two sources (all -1 and all +1 images).
local a, b = monge.full({ 10, 1, 4, 4 }, -1), monge.full({ 20, 1, 4, 4 }, 1)
local mixed = monge.data.mix { { images = a, weight = 3 }, { images = b, weight = 1 }, count = 4000, seed = 2 }
assert(table.concat(mixed:shape(), ",") == "4000,1,4,4")
local from_a = mixed:flatten(2):mean(2):lt(0):sum():item()
assert(math.abs(from_a / 4000 - 0.75) < 0.03, from_a)
ok, err = pcall(monge.data.mix, { { images = a }, { images = monge.zeros { 3, 3, 4, 4 } } })
assert(not ok and err:find("shaped like the first"), err)

-- Image folders: grey and RGB files of different sizes, crops, channel conversion, bad files.
local dir = (arg[1] or ".") .. "/data_test_images"
os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "/sub'")
monge.image.save(monge.full({ 1, 20, 30 }, 0.5), dir .. "/a.png")
monge.image.save(monge.full({ 3, 24, 18 }, -0.5), dir .. "/b.png")
monge.image.save(monge.full({ 1, 20, 30 }, 0.0), dir .. "/sub/c.png")
ok, err = pcall(monge.data.images, { dir = dir })
assert(not ok and err:find("b.png is 18x24 but .*a.png is 30x20") and err:find("give a crop size"), err)
local crops = monge.data.images { dir = dir, size = { 16, 12 }, crops = 3, seed = 5 }
assert(crops.count == 6 and table.concat(crops.images:shape(), ",") == "6,1,16,12", crops.count)
assert(crops.files[1]:find("a.png$") and crops.files[4]:find("b.png$"))
assert(math.abs(crops.images[4]:mean():item() - (-0.5)) < 0.01)  -- RGB to grey keeps a grey level
local rgb = monge.data.images { dir = dir, size = { 16, 12 }, channels = 3, recursive = true }
assert(rgb.count == 3 and rgb.images:size(2) == 3 and rgb.files[3]:find("sub/c.png$"), rgb.count)
assert(monge.data.images { dir = dir, size = { 16, 12 }, crops = 3, seed = 5 }.images:equal(crops.images), "crops are not seeded")
ok, err = pcall(monge.data.images, { dir = dir, size = { 22, 22 } })
assert(not ok and err:find("a.png is 30x20, smaller than the crop 22x22"), err)
local f = assert(io.open(dir .. "/zz_broken.png", "wb")); f:write("\137PNG\r\n\26\n garbage"); f:close()
ok, err = pcall(monge.data.images, { dir = dir, size = { 8, 8 } })
assert(not ok and err:find("zz_broken.png") and err:find("skip_bad = true"), err)
local skipping = monge.data.images { dir = dir, size = { 8, 8 }, skip_bad = true }
assert(skipping.count == 2 and #skipping.skipped == 1, skipping.count)
local list = assert(io.open(dir .. "/list.txt", "w")); list:write("# training files\na.png\nsub/c.png\n"); list:close()
local listed = monge.data.images { list = dir .. "/list.txt" }
assert(listed.count == 2 and listed.images:size(3) == 20)
os.execute("mkdir -p '" .. dir .. "/empty'")
ok, err = pcall(monge.data.images, { dir = dir .. "/empty" })
assert(not ok and err:find("no images in .*empty"), err)
ok, err = pcall(monge.data.images, { dir = dir .. "/missing" })
assert(not ok and err:find("no such folder"), err)
os.execute("rm -rf '" .. dir .. "'")
print("data_test: ok")
