-- monge.train_classifier on 2,000 Fashion-MNIST images for a few seconds: test accuracy well above
-- chance; the saved file reloads with identical predictions and features; fid in its features is
-- ~0 for a set against itself and grows with noise; classifier_agreement is 1 on identical sets;
-- the errors a user sees.
local monge = require "monge"
local out = (arg[1] or ".") .. "/classifier_test"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
monge.set_threads(2)

local train = monge.data.fashion_mnist { split = "train", limit = 2000 }
local test = monge.data.fashion_mnist { split = "test", limit = 500 }
local file = out .. "/classifier.pt"
local r = monge.train_classifier {
  images = train.images, labels = train.labels, test_images = test.images, test_labels = test.labels,
  widths = { 16, 32, 64 }, features = 64, epochs = 3, batch = 64, lr = 3e-3, seed = 1, out = file, progress = false,
}
print(string.format("classifier: test accuracy %.3f after %d iterations, %.1f s (%.0f images/s)", r.accuracy,
  r.iterations, r.seconds, r.images_per_second))
assert(r.accuracy > 0.6, "test accuracy " .. r.accuracy .. " should be well above chance (0.1)")
assert(r.file == file and #r.epochs == 3 and r.iterations == 3 * 32, "result table")
assert(r.epochs[3].test_accuracy == r.accuracy)

-- The file reloads with identical predictions and features.
local c = monge.classifier(file)
assert(c.classes == 10 and c.channels == 1 and c.feature_dim == 64, tostring(c))
assert(c.size[1] == 28 and c.size[2] == 28 and c.widths[3] == 64)
assert(math.abs(c.metrics.test_accuracy - r.accuracy) < 1e-12, "recorded accuracy")
local x = test.images
local labels = c:predict(x)
assert(labels:dtype() == "int64" and labels:size(1) == 500)
assert(labels:equal(r.classifier:predict(x)), "reloaded classifier predicts differently")
assert(c:features(x):equal(r.classifier:features(x)), "reloaded classifier's features differ")
assert(c:features(x):size(2) == 64 and c:logits(x):size(2) == 10)
assert(math.abs(c:accuracy(x, test.labels) - r.accuracy) < 1e-12)
assert(math.abs(labels:eq(test.labels):double():mean():item() - r.accuracy) < 1e-12, "predict uses 0-based labels")
assert(c:predict(x, 7):equal(labels), "batch size changes nothing")

-- FID in its features: ~0 against itself, growing with noise.
local fid = monge.metric("fid", { classifier = file })
assert(fid:higher_is_better() == false)
local function noisy(sigma) return (x + sigma * monge.randn(x:shape(), { seed = 3 })):clamp(-1, 1) end
local base = fid(noisy(0.05), x)
local self = fid(x, x)
print(string.format("fid: self %.3g, noise 0.05 %.4f", self, base))
assert(math.abs(self) < 1e-6 * base, "FID of a set against itself: " .. self)
local previous = 0
for _, sigma in ipairs { 0.05, 0.1, 0.2, 0.4, 0.8 } do
  local d = fid(noisy(sigma), x)
  print(string.format("fid: noise %.2f -> %.4f", sigma, d))
  assert(d > previous, "FID should grow with noise: sigma " .. sigma .. " gives " .. d .. " after " .. previous)
  previous = d
end
-- Two halves of the same distribution are close; far closer than heavy noise.
assert(fid(x:narrow(1, 1, 250), x:narrow(1, 251, 250)) < previous)

-- Agreement: 1 on identical sets, lower on noisy ones.
local agree = monge.metric("classifier_agreement", { classifier = file })
assert(agree(x, x) == 1, "agreement of identical sets")
assert(agree:per_image(x, x):sum():item() == 500)
local heavy = agree(noisy(0.8), x)
assert(heavy < 1, "heavy noise changes some predictions: " .. heavy)

-- Errors a user sees.
local function fails(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern, 1, true), "error '" .. tostring(err) .. "' lacks '" .. pattern .. "'")
end
fails("fid: FID compares the feature distributions of two sets and has no per-image scores", function() return fid:per_image(x, x) end)
fails("fid: the restored set has 1 image(s)", function() return fid(x:narrow(1, 1, 1), x) end)
fails("the classifier takes 1-channel images, got 3 channels", function() return c:predict(monge.zeros(2, 3, 28, 28)) end)
fails("monge.classifier: nope.pt: no such classifier file", monge.classifier, "nope.pt")
fails("classifier has no field 'widht' (did you mean 'widths'? it has predict, logits, features, accuracy, save, path, "
  .. "classes, channels, size, widths, feature_dim, metrics, notes)", function() return c.widht end)
local bad = io.open(out .. "/bad.pt", "w")
bad:write("garbage")
bad:close()
fails("not a monge classifier file, or it is truncated or corrupt", monge.classifier, out .. "/bad.pt")
fails("fid: give exactly one feature extractor", monge.metric, "fid", {})
fails("monge.train_classifier: 'labels' (a tensor) is required", monge.train_classifier, { images = x })
fails("unknown option 'epoch'", monge.train_classifier, { images = x, labels = test.labels, epoch = 1 })
fails("labels must be in 0..9, got 0..10", monge.train_classifier,
  { images = x:narrow(1, 1, 2), labels = monge.tensor({ 0, 10 }, { dtype = "int64" }), classes = 10, progress = false })
fails("directory /nonexistent does not exist", monge.train_classifier,
  { images = x, labels = test.labels, out = "/nonexistent/c.pt", progress = false })
print("ok")
