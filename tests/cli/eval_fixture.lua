-- Writes what the `monge eval` CLI checks use, in DIR (arg[1]): DIR/map.pt (a Gaussian-blur map
-- after 2 iterations on 64 Fashion-MNIST images: seconds), DIR/clean/ (6 test images), DIR/degraded/
-- (the same images blurred, noisy, as 8-bit PNG, same names), DIR/small/ (14 x 14 images of the
-- same names: the wrong size for this map), DIR/other/ (images of other names) and an empty DIR/empty/.
local monge = require "monge"
local dir = assert(arg[1], "give an output folder")
os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "/clean' '" .. dir .. "/degraded' '" .. dir .. "/small' '" .. dir .. "/other' '" .. dir .. "/empty'")
local train = monge.data.fashion_mnist { split = "train", limit = 64 }
local A = monge.operator("gaussian_blur", { size = 13, sigma = 1.5, padding = "reflect" })
local noise = monge.noise("gaussian", { sigma = 0.05 })
monge.train {
  operator = A, noise = noise, clean = train.images:narrow(1, 1, 32), measured = train.images:narrow(1, 33, 32),
  map = monge.network("unet", { channels = 4, depth = 1 }), potential = monge.network("potential", { channels = 4, depth = 2 }),
  solver = monge.solver("uotip", {}), cost = monge.cost("quadratic", { operator = A }), iters = 2, batch = 8,
  out = dir .. "/run", progress = false,
}
os.rename(dir .. "/run/map.pt", dir .. "/map.pt")
local x = monge.data.fashion_mnist { split = "test", limit = 6 }.images
local y = noise:sample(A(x), 0):clamp(-1, 1)
local small = monge.avg_pool2d(x, 2)
for i = 1, 6 do
  local name = string.format("img%02d.png", i)
  monge.image.save(x[i], dir .. "/clean/" .. name)
  monge.image.save(y[i], dir .. "/degraded/" .. name)
  monge.image.save(small[i], dir .. "/small/" .. name)
  monge.image.save(x[i], dir .. "/other/" .. (name:gsub("img", "other")))
end
print("wrote " .. dir)
