-- A C++ exception from a plugin, uncaught: reported with the real message and the script's line.
local monge = require "monge"
local A = monge.operator("downsample", { factor = 2 })
A:forward(monge.zeros { 1, 1, 5, 5 })
