-- monge.report: base64 (RFC 4648 vectors), JSON text, and a page that embeds an image.
local monge = require "monge"
local report = require "monge.report"

for input, expected in pairs { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                               fooba = "Zm9vYmE=", foobar = "Zm9vYmFy", ["\255\0\128"] = "/wCA" } do
  assert(report.base64(input) == expected, input .. " -> " .. report.base64(input))
end

local text = report.json { b = { 1, 2.5, "x\"y\n" }, a = true, n = 0 / 0, e = {} }
assert(text == '{\n  "a": true,\n  "b": [\n    1,\n    2.5,\n    "x\\"y\\n"\n  ],\n  "e": [],\n  "n": null\n}\n', text)

local out = (arg[1] or ".") .. "/report_test"
os.execute("rm -rf '" .. out .. "' && mkdir -p '" .. out .. "'")
monge.image.save(monge.zeros { 1, 4, 4 }, out .. "/x.png")
report.page(out .. "/r.html", "a <title>", {
  report.table({ "name", "value" }, { { "a&b", 1.5 } }),
  report.line_plot { title = "t", series = { { name = "s", points = { { 0, 1 }, { 1, 2 } } } }, lines = { { y = 1.5, label = "ref" } } },
  report.bar_chart { title = "b", bars = { { label = "x", value = 1 }, { label = "y", value = 2 } } },
  report.image(out .. "/x.png"),
})
local html = io.open(out .. "/r.html"):read("*a")
assert(html:find("<title>a &lt;title&gt;</title>", 1, true))
assert(html:find("<td>a&amp;b</td><td>1.500</td>", 1, true))
assert(html:find('src="data:image/png;base64,iVBORw0KGgo', 1, true), "the PNG should be embedded")
assert(select(2, html:gsub("<svg", "")) == 2)
assert(not io.open(out .. "/r.html.tmp"), "no temporary file left")
print("ok")
