-- An uncaught error deep in a call chain: exit code 1, the message with file:line, a traceback.
local function inner() error("deliberate failure for the test") end
local function outer() inner() end
outer()
