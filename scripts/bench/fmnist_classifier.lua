-- FMNIST classifier: trains monge's Fashion-MNIST classifier (the FID feature network) and reports its test accuracy.
--
--   monge bench fmnist-classifier [--config tiny|full] [--out DIR] [--threads N]
--
-- Trains on the 60,000 training images (full) with the 10,000 test images held out, and writes
-- DIR/classifier.pt (for the `fid` and `classifier_agreement` metrics and monge.classifier) and
-- DIR/results.json (accuracy per epoch, FID sanity figures, settings, timings, machine, git
-- revision). BENCHMARKS.md asks for >= 90% test accuracy; the full config fails loudly below it.
local monge = require "monge"
local bench = require "monge.bench"
local report = require "monge.report"

local opts = bench.options("fmnist-classifier", arg, { "config", "out", "threads" }, { config = "full" })

assert(bench.classifier_configs[opts.config], "fmnist-classifier: --config must be tiny or full, got '" .. opts.config .. "'")
local out = opts.out or ("runs/fmnist-classifier-" .. opts.config)
os.execute("mkdir -p '" .. out .. "'")
if opts.threads then monge.set_threads(tonumber(opts.threads)) end

local started = monge.clock()
local r, train, test, cfg = bench.train_classifier(opts.config, out .. "/classifier.pt", opts.config ~= "tiny")
print(string.format("fmnist-classifier: config %s, %d training and %d test images, widths %d/%d/%d, %d features, %d epochs, batch %d, %d threads (%.0f s)",
  opts.config, train.count, test.count, cfg.widths[1], cfg.widths[2], cfg.widths[3], cfg.features, cfg.epochs, cfg.batch, monge.threads(),
  monge.clock() - started))
-- Sanity figures of FID in its features: the test set against itself, against the training
-- images (same distribution), and against noisy test images.
local x = test.images
local fid = monge.metric("fid", { classifier = r.file })
local agree = monge.metric("classifier_agreement", { classifier = r.file })
local n = math.min(x:size(1), train.count)
local function noisy(sigma) return (x + sigma * monge.randn(x:shape(), { seed = 0 })):clamp(-1, 1) end
local sanity = { fid_self = fid(x, x), fid_train_vs_test = fid(train.images:narrow(1, 1, n), x:narrow(1, 1, n)), noise = {} }
for _, sigma in ipairs { 0.05, 0.1, 0.2, 0.4 } do
  local y = noisy(sigma)
  sanity.noise[#sanity.noise + 1] = { sigma = sigma, fid = fid(y, x), agreement = agree(y, x),
                                      accuracy = r.classifier:accuracy(y, test.labels) }
end

local epochs = {}
for _, e in ipairs(r.epochs) do
  epochs[#epochs + 1] = { epoch = e.epoch, train_loss = e.train_loss, train_accuracy = e.train_accuracy,
                          test_accuracy = e.test_accuracy, seconds = e.seconds }
  print(string.format("  epoch %d: train loss %.4f, train accuracy %.4f, test accuracy %.4f (%.0f s)", e.epoch,
    e.train_loss, e.train_accuracy, e.test_accuracy, e.seconds))
end
print(string.format("fid: self %.2g, train vs test %.3f", sanity.fid_self, sanity.fid_train_vs_test))
for _, s in ipairs(sanity.noise) do
  print(string.format("  noise %.2f: fid %.3f, agreement %.4f, accuracy %.4f", s.sigma, s.fid, s.agreement, s.accuracy))
end
print(string.format("test accuracy %.4f in %.0f s (%.0f images/s)", r.accuracy, r.seconds, r.images_per_second))

report.write_json(out .. "/results.json", {
  benchmark = "fmnist-classifier", config = opts.config, git_revision = bench.git_revision(),
  machine = { cpu = bench.machine(), threads = monge.threads() },
  settings = { train_images = train.count, test_images = test.count, widths = cfg.widths, features = cfg.features, epochs = cfg.epochs,
               batch = cfg.batch, lr = cfg.lr, lr_schedule = "cosine", optimiser = "adam", flip = false, seed = 0 },
  accuracy = r.accuracy, seconds = r.seconds, images_per_second = r.images_per_second, parameters = r.parameters,
  epochs = epochs, fid = sanity, classifier = "classifier.pt",
})
print("wrote " .. out .. "/results.json and " .. out .. "/classifier.pt")
assert(r.accuracy >= cfg.min_accuracy, string.format("fmnist-classifier: test accuracy %.4f is below %.2f", r.accuracy,
  cfg.min_accuracy))
