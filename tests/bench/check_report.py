#!/usr/bin/env python3
"""Checks a benchmark's output: results.json parses and names the expected methods with finite
scores; report.html is well-formed (every tag closed, in order), embeds its images and draws its
plots as SVG.

    check_report.py DIR METHOD[,METHOD...] [TASK [LIFT]]

With TASK, results.json must name that task; with LIFT (wiener or operator), the trained methods'
lift. The report must draw the perception-distortion plane (a PSNR/FID point per method), and
uotip's tau curve holds every uotip run (uotip-tauT rows from --taus), sorted by tau, and its
strength curve the recipe's map at --strength 0, 0.25, 0.5, 0.75 and 1 (1 being the uotip row).
"""
import json
import math
import sys
from html.parser import HTMLParser

VOID = {"meta", "img", "br", "hr", "input", "link", "line", "rect", "polyline", "circle", "path"}


class Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.counts, self.errors = [], {}, []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "img":
            src = dict(attrs).get("src", "")
            if not src.startswith("data:image/png;base64,") or len(src) < 100:
                self.errors.append("an image is not embedded: " + src[:60])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def main():
    folder, methods = sys.argv[1], sys.argv[2].split(",")
    with open(f"{folder}/results.json") as f:
        results = json.load(f)
    if len(sys.argv) > 3:
        assert results["task"] == sys.argv[3], f"task {results['task']}, expected {sys.argv[3]}"
    if len(sys.argv) > 4:
        lift = results["settings"]["lift"]
        assert lift == sys.argv[4], f"lift {lift}, expected {sys.argv[4]}"
    names = [m["name"] for m in results["methods"]]
    assert names == methods, f"methods {names}, expected {methods}"
    for m in results["methods"]:
        for key in ("psnr", "ssim", "fid", "accuracy"):
            assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), f"{m['name']}: {key} = {m[key]}"
    assert sorted(results["ordering_by_psnr"]) == sorted(methods)
    uotips = [m for m in results["methods"] if m["name"] == "uotip" or m["name"].startswith("uotip-tau")]
    curve = results.get("tau_curve", [])
    if not isinstance(curve, list):  # an empty Lua table is written as {}
        curve = []
    assert len(curve) == len(uotips), f"tau curve {curve}, uotip runs {[m['name'] for m in uotips]}"
    taus = [p["tau"] for p in curve]
    assert taus == sorted(taus), f"tau curve not sorted: {taus}"
    for p in curve:
        run = [m for m in uotips if m.get("tau") == p["tau"]]
        assert run and abs(run[0]["psnr"] - p["psnr"]) < 1e-9 and abs(run[0]["fid"] - p["fid"]) < 1e-9, f"curve point {p}"
    checker = Checker()
    with open(f"{folder}/report.html") as f:
        checker.feed(f.read())
    assert not checker.errors, checker.errors
    assert not [t for t in checker.stack if t not in ("html", "body", "head")], f"unclosed: {checker.stack}"
    strength = results.get("strength_curve", [])
    if not isinstance(strength, list):
        strength = []
    main = [m for m in results["methods"] if m["name"] == "uotip"]
    if main:
        assert [p["strength"] for p in strength] == [0, 0.25, 0.5, 0.75, 1], f"strength curve {strength}"
        assert abs(strength[-1]["psnr"] - main[0]["psnr"]) < 1e-6, "strength 1 must be the uotip row"
    else:
        assert not strength, "a strength curve without a uotip run"
    assert checker.counts.get("svg", 0) >= 4, "expected the plane, bar charts and training curves"
    with open(f"{folder}/report.html") as f:
        html = f.read()
    assert "Perception-distortion plane" in html and "FID, better down" in html, "no perception-distortion plane"
    assert checker.counts.get("img", 0) >= 1 and checker.counts.get("table", 0) >= 1
    print(f"ok: {len(names)} methods, {checker.counts.get('svg')} plots, {checker.counts.get('img')} image(s)")


if __name__ == "__main__":
    main()
