-- Self-contained HTML reports and JSON results for benchmarks: `local report = require "monge.report"`.
-- Pages embed their images (base64 data URIs) and draw plots as inline SVG, so a report.html
-- opens offline, mailed or copied on its own. Files are written to a temporary name and renamed.
local bit = require "bit"
local json = require("monge.core").json
local M = {}

local function escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end
M.escape = escape

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Base64 of a byte string.
function M.base64(bytes)
  local out, n = {}, #bytes
  for i = 1, n, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local v = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
    local chars = {}
    for k = 3, 0, -1 do
      local idx = bit.band(bit.rshift(v, 6 * k), 63)
      chars[#chars + 1] = alphabet:sub(idx + 1, idx + 1)
    end
    if not b then chars[3], chars[4] = "=", "=" elseif not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

--- An <img> holding the PNG file `path` (embedded); `style` is optional CSS.
function M.image(path, style)
  local f = assert(io.open(path, "rb"), "report.image: cannot read " .. path)
  local bytes = f:read("*a")
  f:close()
  return string.format('<img alt="%s" style="%s" src="data:image/png;base64,%s">', escape(path:match("[^/]*$")),
    style or "max-width: 100%; image-rendering: pixelated", M.base64(bytes))
end

--- A table: `headers` a list of strings, `rows` a list of lists (numbers are formatted with `fmt`,
--- default "%.3f", or with `fmt[column]` when `fmt` is a table); a row may set `.bold = true`.
function M.table(headers, rows, fmt)
  local h = { '<table style="border-collapse: collapse" border="1" cellpadding="4"><tr>' }
  for _, x in ipairs(headers) do h[#h + 1] = "<th>" .. escape(x) .. "</th>" end
  h[#h + 1] = "</tr>"
  for _, row in ipairs(rows) do
    h[#h + 1] = row.bold and '<tr style="font-weight: bold">' or "<tr>"
    for j, x in ipairs(row) do
      local f = type(fmt) == "table" and fmt[j] or type(fmt) == "string" and fmt or "%.3f"
      local text = type(x) == "number" and string.format(f, x) or escape(x)
      h[#h + 1] = "<td>" .. text .. "</td>"
    end
    h[#h + 1] = "</tr>"
  end
  h[#h + 1] = "</table>"
  return table.concat(h)
end

local palette = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22" }

local function range(values, pad)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
  if lo == math.huge then lo, hi = 0, 1 end
  if hi - lo < 1e-12 then lo, hi = lo - 0.5, hi + 0.5 end
  local p = (hi - lo) * (pad or 0.05)
  return lo - p, hi + p
end

--- An SVG line plot. `o.series` = { { name = "uotip", points = { {x, y}, ... } }, ... };
--- `o.title`, `o.xlabel`, `o.ylabel`; `o.lines` = { { y = 16.8, label = "degraded" } } draws
--- horizontal reference lines.
-- An SVG plot's frame: title, box, the ranges at its corners and the axis labels. Returns the
-- list of SVG parts (closed by the caller with "</svg>") and the functions placing x and y.
local function axes(W, H, L, R, T, B, x0, x1, y0, y1, title, xlabel, ylabel)
  local function px(x) return L + (W - L - R) * (x - x0) / (x1 - x0) end
  local function py(y) return H - B - (H - T - B) * (y - y0) / (y1 - y0) end
  local s = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" style="font: 12px sans-serif">', W, H),
    string.format('<text x="%d" y="18" font-weight="bold">%s</text>', L, escape(title)),
    string.format('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>', L, T, W - L - R, H - T - B),
    string.format('<text x="%d" y="%d" text-anchor="end">%.4g</text>', L - 4, T + 4, y1),
    string.format('<text x="%d" y="%d" text-anchor="end">%.4g</text>', L - 4, H - B + 4, y0),
    string.format('<text x="%d" y="%d">%.4g</text><text x="%d" y="%d" text-anchor="end">%.4g</text>', L, H - B + 16, x0, W - R, H - B + 16, x1),
    string.format('<text x="%d" y="%d" text-anchor="middle">%s</text>', L + (W - L - R) / 2, H - 6, escape(xlabel)),
    string.format('<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>', T + (H - T - B) / 2, T + (H - T - B) / 2, escape(ylabel)) }
  return s, px, py
end

function M.line_plot(o)
  local W, H, L, R, T, B = o.width or 640, o.height or 300, 60, 150, 30, 40
  local xs, ys = {}, {}
  for _, s in ipairs(o.series) do
    for _, p in ipairs(s.points) do xs[#xs + 1], ys[#ys + 1] = p[1], p[2] end
  end
  for _, l in ipairs(o.lines or {}) do ys[#ys + 1] = l.y end
  local x0, x1 = range(xs, 0)
  local y0, y1 = range(ys)
  local s, px, py = axes(W, H, L, R, T, B, x0, x1, y0, y1, o.title or "", o.xlabel or "", o.ylabel or "")
  for _, l in ipairs(o.lines or {}) do
    s[#s + 1] = string.format('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="4"/><text x="%d" y="%.1f" fill="#555">%s</text>',
      L, W - R, py(l.y), py(l.y), W - R + 4, py(l.y) + 4, escape(l.label or ""))
  end
  for i, series in ipairs(o.series) do
    local color = palette[(i - 1) % #palette + 1]
    local pts = {}
    for _, p in ipairs(series.points) do pts[#pts + 1] = string.format("%.1f,%.1f", px(p[1]), py(p[2])) end
    if #pts > 0 then
      s[#s + 1] = string.format('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>', color, table.concat(pts, " "))
    end
    s[#s + 1] = string.format('<text x="%d" y="%d" fill="%s">%s</text>', W - R + 4, T + 14 * i, color, escape(series.name))
  end
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n")
end

--- An SVG bar chart: `o.bars` = { { label = "uotip", value = 17.9 }, ... }; `o.title`, `o.unit`.
--- Bars start at the smallest value less a margin, so differences of a few tenths show.
function M.bar_chart(o)
  local W, bar, L, T = o.width or 640, 22, 110, 30
  local H = T + #o.bars * (bar + 6) + 10
  local values = {}
  for _, b in ipairs(o.bars) do values[#values + 1] = b.value end
  local lo, hi = range(values, 0.15)
  local s = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" style="font: 12px sans-serif">', W, H),
    string.format('<text x="%d" y="18" font-weight="bold">%s</text>', L, escape(o.title or "")) }
  for i, b in ipairs(o.bars) do
    local y = T + (i - 1) * (bar + 6)
    local w = math.max(1, (W - L - 90) * (b.value - lo) / (hi - lo))
    s[#s + 1] = string.format('<text x="%d" y="%d" text-anchor="end">%s</text><rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/><text x="%.1f" y="%d">%.3f %s</text>',
      L - 6, y + 15, escape(b.label), L, y, w, bar, palette[(i - 1) % #palette + 1], L + w + 4, y + 15, b.value, escape(o.unit or ""))
  end
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n")
end

--- An SVG scatter plot of 2-D point clouds, with optional displacement arrows.
--- `o.clouds` = { { name = "target", points = { {x, y}, ... }, color = "#9ecae1", radius = 1.5 }, ... }
--- drawn in order; `o.arrows` = { { {x0, y0}, {x1, y1} }, ... } drawn on top; `o.title`; `o.size`
--- in pixels (square, equal scales on both axes).
function M.scatter_plot(o)
  local S, T, P = o.size or 300, 26, 8
  local xs, ys = {}, {}
  for _, c in ipairs(o.clouds) do
    for _, p in ipairs(c.points) do xs[#xs + 1], ys[#ys + 1] = p[1], p[2] end
  end
  local x0, x1 = range(xs)
  local y0, y1 = range(ys)
  local span = math.max(x1 - x0, y1 - y0)
  local cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  local inner = S - 2 * P
  local function px(x) return P + inner * ((x - cx) / span + 0.5) end
  local function py(y) return T + inner * (0.5 - (y - cy) / span) end
  local s = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" style="font: 12px sans-serif">', S, S + T),
    string.format('<text x="%d" y="16" font-weight="bold">%s</text>', P, escape(o.title or "")),
    string.format('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>', P, T, inner, inner),
    '<defs><marker id="arrowhead" markerWidth="6" markerHeight="6" refX="5" refY="3" orient="auto">' ..
      '<path d="M0,0 L6,3 L0,6 z" fill="#333"/></marker></defs>' }
  local legend = {}
  for i, c in ipairs(o.clouds) do
    local color = c.color or palette[(i - 1) % #palette + 1]
    local dots = {}
    for _, p in ipairs(c.points) do
      dots[#dots + 1] = string.format('<circle cx="%.1f" cy="%.1f" r="%.1f"/>', px(p[1]), py(p[2]), c.radius or 1.5)
    end
    s[#s + 1] = string.format('<g fill="%s" fill-opacity="%.2f">%s</g>', color, c.opacity or 0.7, table.concat(dots))
    legend[#legend + 1] = string.format('<tspan fill="%s">%s</tspan>', color, escape(c.name))
  end
  if o.arrows and #o.arrows > 0 then
    local lines = {}
    for _, a in ipairs(o.arrows) do
      lines[#lines + 1] = string.format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', px(a[1][1]), py(a[1][2]), px(a[2][1]), py(a[2][2]))
    end
    s[#s + 1] = '<g stroke="#333" stroke-width="0.7" stroke-opacity="0.6" marker-end="url(#arrowhead)">' .. table.concat(lines) .. "</g>"
  end
  s[#s + 1] = string.format('<text x="%d" y="%d" text-anchor="end">%s</text>', S - P, 16, table.concat(legend, " "))
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n")
end

--- The perception-distortion plane: PSNR (x, higher is better) against FID (y, lower is better, so the
--- best corner is bottom right). o.points: { {name =, psnr =, fid =}, ... } drawn as labelled dots;
--- o.curves: { {name =, points = { {psnr =, fid =, label =}, ... }}, ... } drawn as lines through
--- labelled dots (e.g. uotip over tau). A point is dominated when another is right of and below it.
function M.plane(o)
  local W, H, L, R, T, B = o.width or 640, o.height or 360, 60, 20, 30, 40
  local xs, ys = {}, {}
  for _, p in ipairs(o.points or {}) do xs[#xs + 1], ys[#ys + 1] = p.psnr, p.fid end
  for _, c in ipairs(o.curves or {}) do
    for _, p in ipairs(c.points) do xs[#xs + 1], ys[#ys + 1] = p.psnr, p.fid end
  end
  if #xs == 0 then return "" end
  local x0, x1 = range(xs)
  local y0, y1 = range(ys)
  local s, px, py = axes(W, H, L, R, T, B, x0, x1, y0, y1, o.title or "Perception-distortion plane",
                         "PSNR (dB), better to the right", "FID, better down")
  for i, c in ipairs(o.curves or {}) do
    local color = palette[(i - 1) % #palette + 1]
    local pts = {}
    for _, p in ipairs(c.points) do pts[#pts + 1] = string.format("%.1f,%.1f", px(p.psnr), py(p.fid)) end
    s[#s + 1] = string.format('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>', color, table.concat(pts, " "))
    for _, p in ipairs(c.points) do
      s[#s + 1] = string.format('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/><text x="%.1f" y="%.1f" fill="%s">%s</text>', px(p.psnr),
        py(p.fid), color, px(p.psnr) + 5, py(p.fid) - 5, color, escape(p.label or ""))
    end
    s[#s + 1] = string.format('<text x="%d" y="%d" fill="%s">%s</text>', L + 6, T + 14 * i, color, escape(c.name))
  end
  for _, p in ipairs(o.points or {}) do
    s[#s + 1] = string.format('<circle cx="%.1f" cy="%.1f" r="4" fill="#333"/><text x="%.1f" y="%.1f">%s</text>', px(p.psnr), py(p.fid),
      px(p.psnr) + 6, py(p.fid) + 4, escape(p.name))
  end
  s[#s + 1] = "</svg>"
  return table.concat(s, "\n")
end

local function write_atomically(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"), "cannot write " .. tmp)
  f:write(text)
  f:close()
  assert(os.rename(tmp, path), "cannot rename " .. tmp .. " to " .. path)
end

--- Writes a page: `parts` are HTML strings, joined in order.
function M.page(path, title, parts)
  write_atomically(path, string.format([[<!doctype html>
<html><head><meta charset="utf-8"><title>%s</title></head>
<body style="font-family: sans-serif; max-width: 1000px; margin: 1em auto">
<h1>%s</h1>
%s
</body></html>
]], escape(title), escape(title), table.concat(parts, "\n")))
end

--- JSON text of a Lua value, indented by two spaces, with a final newline: monge.json.encode's
--- mapping (objects with sorted keys, arrays for 1..n tables, null for NaN and infinities).
function M.json(value) return json.encode(value, 2) .. "\n" end

--- Writes `value` as JSON to `path`.
function M.write_json(path, value) write_atomically(path, M.json(value)) end

return M
