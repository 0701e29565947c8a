-- A pipeline with a misspelled parameter: monge must exit non-zero naming it and suggesting the fix.
local monge = require "monge"
local A = monge.operator("gaussian_blur", { size = 13, sigmma = 1.5 })
print("not reached", A)
