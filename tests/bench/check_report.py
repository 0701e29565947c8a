#!/usr/bin/env python3
"""Checks a benchmark's output: results.json parses and names the expected methods with finite
scores; report.html is well-formed (every tag closed, in order), embeds its images and draws its
plots as SVG.

    check_report.py DIR METHOD[,METHOD...] [TASK]

With TASK, results.json must name that task.
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
    names = [m["name"] for m in results["methods"]]
    assert names == methods, f"methods {names}, expected {methods}"
    for m in results["methods"]:
        for key in ("psnr", "ssim", "fid", "accuracy"):
            assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), f"{m['name']}: {key} = {m[key]}"
    assert sorted(results["ordering_by_psnr"]) == sorted(methods)
    checker = Checker()
    with open(f"{folder}/report.html") as f:
        checker.feed(f.read())
    assert not checker.errors, checker.errors
    assert not [t for t in checker.stack if t not in ("html", "body", "head")], f"unclosed: {checker.stack}"
    assert checker.counts.get("svg", 0) >= 3, "expected bar charts and training curves"
    assert checker.counts.get("img", 0) >= 1 and checker.counts.get("table", 0) >= 1
    print(f"ok: {len(names)} methods, {checker.counts.get('svg')} plots, {checker.counts.get('img')} image(s)")


if __name__ == "__main__":
    main()
