-- PHOTO-IP: unpaired restoration of real photographs, trained on patches, applied to whole photos.
--
--   monge bench photo-ip [--config tiny|short|full] [--out DIR] [--tasks gb,sr]
--                        [--methods degraded,baseline,calibrated,uotip,supervised] [--photos DIR] [--seed S] [--iters N]
--                        [--lr R] [--lr-potential R] [--r1 G]
--
-- Data: the photographs in --photos (default /usr/share/backgrounds/mate/nature, Debian's
-- mate-backgrounds: 12 JPEGs of 1280x1024 to 2560x1920), split by image (never by patch) with a
-- seeded permutation: a quarter held out (3 of 12), the rest for training. Training uses random
-- 64x64 RGB crops of the training photos; a seeded half of the crops is the clean set X, the other
-- half (degraded on the fly) the measurement set Y: unpaired.
-- Tasks (noise: Gaussian, sigma 0.05 on [-1, 1]):
--   gb   Gaussian blur, kernel 25x25, sigma 2.0, reflect padding
--   sr   4x4 average pooling (downsample, factor 4)
-- The trained maps start from the unpaired Wiener filter of the task (monge.wiener: the operator's
-- response, the clean training patches' spectrum, the noise variance) as their lift, and the
-- quadratic cost is anchored there; the map's network learns a residual on top of it.
-- Methods (--methods; `baseline` is `wiener` for gb and `bicubic` for sr, and those names are
-- accepted as well):
--   degraded    the degraded photo as stored, at the photo's size: Q(y) for gb; for sr the
--               low-resolution measurement enlarged by pixel replication (nearest), since Q(y)
--               there is the bicubic baseline itself
--   wiener      (gb) the unpaired Wiener filter, by FFT over the whole photo (reflect padding): no pairs
--   calibrated  (gb) the same filter for a user who does not know the blur: its sigma and the noise
--               level estimated by monge.calibrate from the clean and measured training patches
--               (unpaired), the filter built from the estimates (shown as wiener-calibrated)
--   bicubic     (sr) bicubic upsampling of the measurement (the operator's own lift)
--   uotip       the UOTIP solver (KL, full cost likelihood + lambda quadratic), the FMNIST-IP recipe:
--               unet and potential networks, R1 0.2, cosine decay, moving average; tau keeps the
--               recipe's weight per value (0.1 for 28x28 values), 0.1 * 784 / (3 * 64 * 64); the
--               map's Adam rate is --lr (default 1e-3, ten times FMNIST-IP's: at 1e-4 the maps
--               barely left the identity in 1,000 steps), the potential's half of it
--   supervised  the same map network trained on pairs with MSE (the upper bound), rate --lr
-- Every task also records that calibration (for sr: the factor from the patch sizes, the noise
-- level by spectrum matching) against the true values, in results.json and the report.
-- Held-out evaluation: each held-out photo (cropped to a multiple of 4 pixels, or for the tiny
-- config a central window) is degraded once (seeded), stored as an 8-bit PNG, and each method's
-- result is written as an 8-bit PNG: trained maps restore the stored PNG with the streaming apply
-- (monge.apply, exact tiles), the other methods in memory. Every result is read back and scored
-- against the clean photo on [0, 1] (psnr, ssim metric plugins). Writes DIR/results.json, a
-- self-contained DIR/report.html (tables, bars, training curves, side-by-side crops) and keeps
-- DIR/TASK/{measured,METHOD}/PHOTO.png and DIR/TASK/runs/METHOD/ (log, map).
local monge = require "monge"
local bench = require "monge.bench"
local report = require "monge.report"

local all_tasks = { "gb", "sr" }
local all_methods = { "degraded", "baseline", "calibrated", "uotip", "supervised" }
local opts = bench.options("photo-ip", arg, { "config", "out", "tasks", "methods", "photos", "seed", "iters", "lr",
                                             "lr-potential", "r1" },
                           { config = "short", tasks = "gb,sr", methods = table.concat(all_methods, ","),
                             photos = "/usr/share/backgrounds/mate/nature", seed = "0", iters = "0", lr = "1e-3", r1 = "0.2" })

local configs = {
  -- Seconds: for ctest. A 96 x 128 central window of each held-out photo. Not a measurement.
  tiny = { crops = 16, iters = 6, batch = 4, eval_every = 3, eval_crops = 2, window = { 96, 128 }, view = 48, calibration = { 16, 6 },
           map = { channels = 4, depth = 1 }, potential = { channels = 4, depth = 2 } },
  -- A CPU run of about half an hour for both tasks on 2 cores (docs/benchmarks.md): 1,000 iterations
  -- of batch 16 per trained method, the held-out photos at full size.
  short = { crops = 256, iters = 1000, batch = 16, eval_every = 100, eval_crops = 8, window = nil, view = 160, calibration = { 600, 18 },
            map = { channels = 16, depth = 2 }, potential = { channels = 16, depth = 3 } },
  -- A long run (a GPU, or a night or two on a CPU): about as many crops per photo as the photo has
  -- 64x64 tiles (every training patch, seen at random offsets), wider and deeper networks, 8,000
  -- iterations of batch 32. Not measured yet.
  full = { crops = 600, iters = 8000, batch = 32, eval_every = 500, eval_crops = 32, window = nil, view = 160, calibration = { 2000, 24 },
           map = { channels = 32, depth = 3 }, potential = { channels = 32, depth = 3 } },
}
local patch = 64
local noise_sigma = 0.05
local tau = 0.1 * 784 / (3 * patch * patch)

-- Every argument is checked before anything is written.
local function fail(msg) error("photo-ip: " .. msg, 0) end
local cfg = configs[opts.config] or fail("--config must be tiny, short or full, got '" .. opts.config .. "'")
local seed = tonumber(opts.seed)
if not seed or seed ~= math.floor(seed) or seed < 0 then fail("--seed must be a non-negative integer, got '" .. opts.seed .. "'") end
local function pick(list, known, what)
  local out, seen = {}, {}
  for name in list:gmatch("[^,]+") do
    local ok = false
    for _, k in ipairs(known) do ok = ok or k == name end
    if not ok then fail("unknown " .. what .. " '" .. name .. "' (known: " .. table.concat(known, ", ") .. ")") end
    if not seen[name] then out[#out + 1], seen[name] = name, true end
  end
  if #out == 0 then fail("--" .. what .. "s names none") end
  return out
end
local iters = tonumber(opts.iters)
if not iters or iters ~= math.floor(iters) or iters < 0 then fail("--iters must be a non-negative integer, got '" .. opts.iters .. "'") end
if iters > 0 then cfg.iters, cfg.eval_every = iters, math.max(1, math.floor(iters / 10)) end
local lr = tonumber(opts.lr)
if not lr or not (lr > 0 and lr <= 0.1) then fail("--lr must be a number in (0, 0.1], got '" .. opts.lr .. "'") end
-- uotip's potential: --lr-potential, default half of --lr.
local lr_potential = tonumber(opts["lr-potential"] or lr / 2)
if not lr_potential or not (lr_potential > 0 and lr_potential <= 0.1) then
  fail("--lr-potential must be a number in (0, 0.1], got '" .. tostring(opts["lr-potential"]) .. "'")
end
local r1 = tonumber(opts.r1)
if not r1 or not (r1 >= 0) then fail("--r1 must be a number >= 0, got '" .. opts.r1 .. "'") end
local tasks = pick(opts.tasks, all_tasks, "task")
local methods = {}
for _, name in ipairs(pick(opts.methods, { "degraded", "baseline", "wiener", "bicubic", "calibrated", "wiener-calibrated", "uotip",
                                          "supervised" }, "method")) do
  local m = (name == "wiener" or name == "bicubic") and "baseline" or name == "wiener-calibrated" and "calibrated" or name
  local dup = false
  for _, x in ipairs(methods) do dup = dup or x == m end
  if not dup then methods[#methods + 1] = m end
end
local baseline_of = { gb = "wiener", sr = "bicubic" }
local calibrated_of = { gb = "wiener-calibrated" }  -- sr: the factor is the sizes' ratio, nothing to estimate

-- The photographs: every image file in the folder, sorted by name.
local photo_dir = opts.photos:gsub("/+$", "")
local function shell_quote(path) return "'" .. path:gsub("'", "'\\''") .. "'" end
local quoted = shell_quote(photo_dir)
if not bench.sh("test -d " .. quoted .. " && echo folder"):match("folder") then
  fail("no such folder: " .. photo_dir .. " (give --photos DIR, a folder of photographs)")
end
local listing = bench.sh("find " .. quoted .. " -maxdepth 1 -type f")
local photos = {}
for line in listing:gmatch("[^\n]+") do
  local ext = (line:match("%.([^./]+)$") or ""):lower()
  if ext == "jpg" or ext == "jpeg" or ext == "png" or ext == "tif" or ext == "tiff" or ext == "webp" then
    photos[#photos + 1] = line
  end
end
table.sort(photos)
if #photos < 2 then
  fail(string.format("%s holds %d image file(s) (jpg, jpeg, png, tif, tiff, webp); at least 2 are needed, one to train on and " ..
    "one held out (install mate-backgrounds or give --photos DIR)", photo_dir, #photos))
end
local sizes = {}
for _, file in ipairs(photos) do
  local ok, h = pcall(monge.image.header, file)
  if not ok then fail("cannot read " .. file .. " (" .. tostring(h):gsub("^.-:%d+: ", "") .. ")") end
  local need_h, need_w = patch, patch
  if cfg.window then need_h, need_w = math.max(patch, cfg.window[1]), math.max(patch, cfg.window[2]) end
  if h.height < need_h or h.width < need_w then
    fail(string.format("%s is %dx%d, smaller than the %dx%d this config needs", file, h.width, h.height, need_w, need_h))
  end
  sizes[file] = h
end

-- Split by image: a seeded quarter held out (at least one), the rest for training.
local n_test = math.max(1, math.floor(#photos / 4 + 0.5))
local parts = monge.data.split(#photos, { #photos - n_test, n_test }, seed)
local function files_of(index)
  local list = {}
  for _, i in ipairs(index:tolist()) do list[#list + 1] = photos[i + 1] end
  table.sort(list)
  return list
end
local train_files, test_files = files_of(parts[1]), files_of(parts[2])
local function base(file) return (file:match("([^/]+)$"):gsub("%.[^.]*$", "")) end

local t_start, script_revision = monge.clock(), bench.git_revision()
local out = opts.out or ("runs/photo-ip-" .. opts.config)
local function sh_ok(cmd) return bench.sh(cmd .. " && echo done"):match("done\n?$") ~= nil end
if not sh_ok("mkdir -p " .. shell_quote(out)) then fail("cannot create the output folder " .. out) end

print(string.format("photo-ip: config %s, tasks %s, methods %s; %d photos in %s: %d train, %d held out (%s); %d threads",
  opts.config, table.concat(tasks, ","), table.concat(methods, ","), #photos, photo_dir, #train_files, #test_files,
  table.concat((function() local t = {} for _, f in ipairs(test_files) do t[#t + 1] = base(f) end return t end)(), ", "),
  monge.threads()))

-- Training patches: random 64x64 RGB crops of the training photos; a seeded half clean, half measured.
local t_data = monge.clock()
local crops = monge.data.images { files = train_files, size = { patch, patch }, crops = cfg.crops, channels = 3, seed = seed }
local halves = monge.data.split(crops.count, { 0.5, 0.5 }, seed + 1)
local clean = crops.images:index_select(1, halves[1])
local measured = crops.images:index_select(1, halves[2])
-- Held-out patches for the PSNR curve during training (the trainer degrades them with seed 0).
local eval_patches = monge.data.images { files = test_files, size = { patch, patch }, crops = cfg.eval_crops, channels = 3,
                                         seed = seed + 2 }.images
crops = nil
print(string.format("photo-ip: %d clean and %d measured training patches, %d held-out patches (%.1f s)", clean:size(1),
  measured:size(1), eval_patches:size(1), monge.clock() - t_data))

-- A held-out photo as it is scored: RGB, cropped to a multiple of 4 (top-left kept), or the
-- config's central window.
local function load_photo(file)
  local img = monge.image.load(file)
  local c = img:size(1)
  if c == 2 or c == 4 then img = img:narrow(1, 1, c - 1) end
  if img:size(1) == 1 then img = monge.cat({ img, img, img }, 1) end
  local h, w = img:size(2), img:size(3)
  local top, left, ch, cw
  if cfg.window then
    ch, cw = cfg.window[1], cfg.window[2]
    top, left = math.floor((h - ch) / 2), math.floor((w - cw) / 2)
  else
    ch, cw, top, left = h - h % 4, w - w % 4, 0, 0
  end
  return img:narrow(2, top + 1, ch):narrow(3, left + 1, cw):contiguous():unsqueeze(1),
    { top = top, left = left, height = ch, width = cw, photo_width = w, photo_height = h }
end

-- The window of a photo shown in the report: the view x view square (on a grid of half steps)
-- whose clean luminance varies most, i.e. the most detailed part.
local function detailed_window(x)
  local v = math.min(cfg.view, x:size(3), x:size(4))
  local step = math.max(1, math.floor(v / 2))
  local grey = x:mean(2, true)
  local m = monge.avg_pool2d(grey, v, step)
  local var = monge.avg_pool2d(grey * grey, v, step) - m * m
  local idx = var:flatten():argmax():item()
  local cols = var:size(4)
  return math.floor(idx / cols) * step, (idx % cols) * step, v
end

local psnr_metric, ssim_metric = monge.metric("psnr"), monge.metric("ssim")

local task_defs = {
  gb = { number = 1, describe = "Gaussian blur 25x25, sigma 2.0, reflect padding",
         operator = function() return monge.operator("gaussian_blur", { size = 25, sigma = 2.0, padding = "reflect" }) end,
         calibrate = { operator = "gaussian_blur", params = { size = 25, padding = "reflect" }, parameter = "sigma", truth = 2.0,
                       range = { 0.3, 6 } } },
  sr = { number = 2, describe = "4x4 average pooling (downsample factor 4), Q = bicubic upsampling",
         operator = function() return monge.operator("downsample", { factor = 4 }) end,
         calibrate = { operator = "downsample", parameter = "factor", truth = 4 } },
}

-- A calibration record in words (the console and the report).
local function calibration_text(r)
  return string.format("from %d clean and %d measured training patches (unpaired, monge.calibrate): %s %.3f (true %g, %+.1f%%), " ..
    "noise sigma %.4f (true %.2f, %+.1f%%), %.1f s", r.images, r.images, r.parameter, r.estimate, r.truth, 100 * (r.estimate / r.truth - 1),
    r.noise_estimate, r.noise_truth, 100 * (r.noise_estimate / r.noise_truth - 1), r.seconds)
end

-- What a user who knows neither the blur nor the noise would find: monge.calibrate on the clean
-- patches and one noisy measurement of the measured ones (unpaired), at most cfg.calibration[1] of
-- each (16 for tiny, 600 for short, 2,000 for full) and cfg.calibration[2] search steps. Returns
-- the record (for results.json) and monge.calibrate's result (the operator at the estimate).
local function calibrate_task(task, A, noise)
  local def, t0 = task_defs[task].calibrate, monge.clock()
  local n = math.min(cfg.calibration[1], clean:size(1), measured:size(1))
  local x, y = clean:narrow(1, 1, n), noise:sample(A(measured:narrow(1, 1, n)), seed + 500 + task_defs[task].number)
  local record = { parameter = def.parameter, truth = def.truth, noise_truth = noise_sigma, images = n }
  local c
  if def.parameter == "factor" then
    record.estimate = require("monge.calibrate").factor_from_shapes(x, y)
    c = monge.calibrate { clean = x, measured = y, operator = def.operator, params = { factor = record.estimate } }
  else
    c = monge.calibrate { clean = x, measured = y, operator = def.operator, params = def.params, parameter = def.parameter,
                          range = def.range, iterations = cfg.calibration[2] }
    record.estimate = c.value
  end
  record.noise_estimate, record.seconds = c.noise_sigma, monge.clock() - t0
  print(string.format("photo-ip: calibration of %s: %s", task, calibration_text(record)))
  return record, c
end

local results, crops_png = {}, {}
for _, task in ipairs(tasks) do
  local A = task_defs[task].operator()
  local noise = monge.noise("gaussian", { sigma = noise_sigma })
  local lambda = 1.1 * math.max(1, A:lipschitz() or 1)
  local lik = monge.cost("likelihood", { operator = A, noise = noise })
  -- The lift of the trained maps, and the unpaired Wiener baseline: the Wiener filter of A, its prior
  -- from the clean training patches, its noise variance from the noise model (no pairs).
  local Q = monge.wiener { operator = A, clean = clean, noise = noise }
  local quad = monge.cost("quadratic", { operator = Q })
  local calibration, calibrated = calibrate_task(task, A, noise)
  local dir = out .. "/" .. task
  if not sh_ok("rm -rf " .. shell_quote(dir) .. " && mkdir -p " .. shell_quote(dir .. "/measured") .. " " .. shell_quote(dir .. "/runs")) then
    fail("cannot create " .. dir)
  end
  print(string.format("photo-ip: task %s (%s, noise sigma %.2f)", task, task_defs[task].describe, noise_sigma))

  -- Train (or fit) every method first.
  -- This task's methods by their names (calibrated has none for sr).
  local names = {}
  for _, m in ipairs(methods) do
    local name = m
    if m == "baseline" then name = baseline_of[task] elseif m == "calibrated" then name = calibrated_of[task] end
    if name then names[#names + 1] = name end
  end
  local entries = {}
  for _, name in ipairs(names) do
    local e = { name = name, photos = {}, train_seconds = 0, apply_seconds = 0 }
    entries[#entries + 1] = e
    local t0 = monge.clock()
    if name == "wiener" or name == "wiener-calibrated" then
      e.filter = name == "wiener" and Q or monge.wiener { operator = calibrated.operator, clean = clean,
                                                          noise = monge.noise("gaussian", { sigma = calibrated.noise_sigma }) }
      e.settings = { unpaired = true, filter_radius = monge.wiener_info(e.filter).radius }
    elseif name == "uotip" or name == "supervised" then
      local solver, cost
      if name == "uotip" then
        solver = monge.solver("uotip", { psi1 = "kl", psi2 = "kl", tau = tau, r1 = r1, lr_schedule = "cosine",
                                          lr_map = lr, lr_potential = lr_potential })
        cost = lik + lambda * quad
      else
        solver, cost = monge.solver("supervised", { lr = lr, lr_schedule = "cosine" }), quad
      end
      local run_dir = dir .. "/runs/" .. name
      print(string.format("photo-ip: training %s for %s (%d iterations, batch %d)", name, task, cfg.iters, cfg.batch))
      local run = monge.train {
        operator = Q, noise = noise, clean = clean, measured = measured, eval = eval_patches,
        map = monge.network("unet", cfg.map), potential = monge.network("potential", cfg.potential),
        solver = solver, cost = cost, iters = cfg.iters, batch = cfg.batch, seed = seed,
        eval_every = cfg.eval_every, out = run_dir, progress = opts.config ~= "tiny",
      }
      e.map = run_dir .. "/map.pt"
      e.curve = {}
      for _, ev in ipairs(run.evals) do e.curve[#e.curve + 1] = { ev.iter, ev.psnr } end
      e.patch_psnr_degraded = run.evals[#run.evals] and run.evals[#run.evals].psnr_degraded
      e.losses = bench.read_log(run_dir)
      e.its_per_second = run.its_per_second
    end
    e.train_seconds = monge.clock() - t0
    if not sh_ok("mkdir -p " .. shell_quote(dir .. "/" .. name)) then fail("cannot create " .. dir .. "/" .. name) end
  end

  -- Degrade each held-out photo once, store it as an 8-bit PNG, restore and score.
  local views = {}
  local photo_info = {}
  for pi, file in ipairs(test_files) do
    local name = base(file)
    local x, box = load_photo(file)
    local meas = dir .. "/measured/" .. name .. ".png"
    local y = noise:sample(A(x), seed + 1000 * task_defs[task].number + pi)
    monge.image.save(y[1], meas)
    local y8 = monge.image.load(meas):unsqueeze(1)
    local q = A:lift(y8):clamp(-1, 1)
    box.measured = meas
    box.measured_width, box.measured_height = y8:size(4), y8:size(3)
    photo_info[#photo_info + 1] = { name = name, file = file, box = box }
    local top, left, v = detailed_window(x)
    local row = { x:narrow(3, top + 1, v):narrow(4, left + 1, v) }
    for _, e in ipairs(entries) do
      local target = dir .. "/" .. e.name .. "/" .. name .. ".png"
      local t0 = monge.clock()
      if e.map then
        monge.apply { map = e.map, input = meas, output = target, progress = false }
      else
        local restored
        if e.filter then
          restored = monge.wiener_restore(e.filter, y8):clamp(-1, 1)
        elseif e.name == "degraded" and task == "sr" then
          restored = monge.interpolate(y8, { scale = A:scale_factor() }, "nearest")
        else
          restored = q   -- degraded (gb) and bicubic (sr)
        end
        monge.image.save(restored[1], target)
      end
      local seconds = monge.clock() - t0
      local r = monge.image.load(target):unsqueeze(1)
      assert(r:size(3) == x:size(3) and r:size(4) == x:size(4),
        string.format("photo-ip: %s is %dx%d, expected %dx%d", target, r:size(4), r:size(3), x:size(4), x:size(3)))
      local p, s = psnr_metric:per_image(r, x)[1]:item(), ssim_metric:per_image(r, x)[1]:item()
      e.photos[#e.photos + 1] = { photo = name, psnr = p, ssim = s, seconds = seconds, file = target }
      if e.map then e.apply_seconds = e.apply_seconds + seconds end
      row[#row + 1] = r:narrow(3, top + 1, v):narrow(4, left + 1, v)
      print(string.format("  %-4s %-12s %-10s PSNR %6.2f dB  SSIM %.4f  %6.1f s", task, name, e.name, p, s, seconds))
    end
    photo_info[#photo_info].view = { top = top + box.top, left = left + box.left, size = v }
    views[#views + 1] = monge.cat(row, 1)
  end
  local grid = dir .. "/crops.png"
  monge.image.save(monge.image.grid(monge.cat(views, 1), { nrow = #entries + 1, padding = 4, pad_value = 1 }), grid)
  crops_png[task] = grid

  local base_psnr
  for _, e in ipairs(entries) do
    local sp, ss = 0, 0
    for _, ph in ipairs(e.photos) do sp, ss = sp + ph.psnr, ss + ph.ssim end
    e.psnr, e.ssim = sp / #e.photos, ss / #e.photos
    e.filter = nil
    if e.name == "degraded" then base_psnr = e.psnr end
    print(string.format("  %-4s %-10s mean PSNR %6.2f dB  SSIM %.4f  (train %.1f s, apply %.1f s)", task, e.name, e.psnr, e.ssim,
      e.train_seconds, e.apply_seconds))
  end
  results[#results + 1] = { task = task, operator = task_defs[task].describe, lambda = lambda, photos = photo_info,
                            methods = entries, crops = grid, degraded_psnr = base_psnr, calibration = calibration }
end

local machine = { cpu = bench.machine(), threads = monge.threads(), cores = tonumber((bench.sh("nproc"))) }
local function names(list) local t = {} for _, f in ipairs(list) do t[#t + 1] = base(f) end return t end
report.write_json(out .. "/results.json", {
  -- git_revision: the sources the running monge was built from; script_revision: the checkout it
  -- ran in (the pipeline's own revision when a monge built earlier runs a newer script).
  benchmark = "photo-ip", config = opts.config, git_revision = monge.git_revision, script_revision = script_revision,
  machine = machine, seconds = monge.clock() - t_start,
  photos = { folder = photo_dir, count = #photos, train = names(train_files), held_out = names(test_files), split_seed = seed },
  settings = { patch = patch, crops_per_photo = cfg.crops, clean_patches = clean:size(1), measured_patches = measured:size(1),
               eval_patches = eval_patches:size(1), iterations = cfg.iters, batch = cfg.batch, map = cfg.map,
               potential = cfg.potential, tau = tau, r1 = r1, lr_map = lr, lr_potential = lr_potential, noise_sigma = noise_sigma, seed = seed,
               window = cfg.window and { height = cfg.window[1], width = cfg.window[2] } or "whole photo, cropped to a multiple of 4",
               wiener = { unpaired = true }, lift = "wiener" },
  tasks = results,
})

-- The report.
local parts = {
  string.format("<p>Config <b>%s</b>: %d photos from %s split by image (seed %d): training on %s; held out: %s. " ..
    "%d random %dx%d RGB crops per training photo, half clean and half measured (unpaired); %d iterations, batch %d, " ..
    "unet %d/%d and potential %d/%d, tau %.5f, R1 %g. Noise sigma %.2f on [-1, 1]; degraded photos stored as 8-bit PNG; " ..
    "trained maps restore them with the streaming apply. %s, %d threads, git %s.</p>",
    opts.config, #photos, report.escape(photo_dir), seed, report.escape(table.concat(names(train_files), ", ")),
    report.escape(table.concat(names(test_files), ", ")), cfg.crops, patch, patch, cfg.iters, cfg.batch, cfg.map.channels,
    cfg.map.depth, cfg.potential.channels, cfg.potential.depth, tau, r1, noise_sigma, report.escape(machine.cpu), machine.threads,
    report.escape(monge.git_revision)),
}
for _, t in ipairs(results) do
  local headers = { "method", "PSNR (dB, mean)", "vs degraded", "SSIM (mean)" }
  for _, ph in ipairs(t.photos) do headers[#headers + 1] = ph.name .. " PSNR / SSIM" end
  headers[#headers + 1] = "train s"
  headers[#headers + 1] = "apply s"
  local rows, pb, sb, curves, losses, lines = {}, {}, {}, {}, {}, {}
  local best = -math.huge
  for _, e in ipairs(t.methods) do best = math.max(best, e.psnr) end
  for _, e in ipairs(t.methods) do
    local row = { e.name, string.format("%.2f", e.psnr), t.degraded_psnr and string.format("%+.2f", e.psnr - t.degraded_psnr) or "",
                  string.format("%.4f", e.ssim), bold = e.psnr == best }
    for _, ph in ipairs(e.photos) do row[#row + 1] = string.format("%.2f / %.4f", ph.psnr, ph.ssim) end
    row[#row + 1] = string.format("%.1f", e.train_seconds)
    row[#row + 1] = string.format("%.1f", e.apply_seconds)
    rows[#rows + 1] = row
    pb[#pb + 1] = { label = e.name, value = e.psnr }
    sb[#sb + 1] = { label = e.name, value = e.ssim }
    if e.curve then
      curves[#curves + 1] = { name = e.name, points = e.curve }
      local series = { { name = "loss_map", points = e.losses.loss_map } }
      if #e.losses.loss_potential > 0 then series[2] = { name = "loss_potential", points = e.losses.loss_potential } end
      losses[#losses + 1] = report.line_plot { title = t.task .. ": " .. e.name .. " training losses", series = series,
                                               xlabel = "iteration", ylabel = "loss" }
      if e.patch_psnr_degraded and #lines == 0 then lines[1] = { y = e.patch_psnr_degraded, label = "degraded" } end
    end
  end
  local sizes_text = {}
  for _, ph in ipairs(t.photos) do
    sizes_text[#sizes_text + 1] = string.format("%s %dx%d (measured %dx%d)", ph.name, ph.box.width, ph.box.height,
      ph.box.measured_width, ph.box.measured_height)
  end
  local column_names = { "clean" }
  for _, e in ipairs(t.methods) do column_names[#column_names + 1] = e.name end
  parts[#parts + 1] = "<h2>Task " .. report.escape(t.task) .. ": " .. report.escape(t.operator) .. "</h2>"
  parts[#parts + 1] = "<p>Held-out photos as scored: " .. report.escape(table.concat(sizes_text, ", ")) ..
    string.format(". lambda %.2f.</p>", t.lambda)
  parts[#parts + 1] = "<p>Calibration " .. report.escape(calibration_text(t.calibration)) .. ".</p>"
  parts[#parts + 1] = report.table(headers, rows)
  parts[#parts + 1] = report.bar_chart { title = t.task .. ": mean PSNR on the held-out photos (dB)", bars = pb, unit = "dB" }
  parts[#parts + 1] = report.bar_chart { title = t.task .. ": mean SSIM on the held-out photos", bars = sb }
  if #curves > 0 then
    parts[#parts + 1] = report.line_plot { title = t.task .. ": PSNR of the exported map on held-out 64x64 patches", series = curves,
      lines = lines, xlabel = "iteration", ylabel = "PSNR (dB)" }
    for _, plot in ipairs(losses) do parts[#parts + 1] = plot end
  end
  parts[#parts + 1] = "<p>Crops of the held-out photos (the most detailed square of each, one photo per row); columns: " ..
    report.escape(table.concat(column_names, ", ")) .. ".</p>"
  parts[#parts + 1] = report.image(t.crops, "width: 100%; image-rendering: pixelated")
end
report.page(out .. "/report.html", "PHOTO-IP, config " .. opts.config, parts)
print("wrote " .. out .. "/results.json and " .. out .. "/report.html")
