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
print("data_test: ok")
