#!/usr/bin/env python3
"""Checks the output of `monge bench photo-ip`: results.json parses, the split is by image and
recorded, every task names the expected methods with a finite PSNR and SSIM for every held-out
photo, the degraded input scores below MAX_DEGRADED dB (a pipeline that scored the clean photo
against itself would reach 120), every restored file exists as a PNG of the photo's scored size
(the measurement of the sr task a quarter of it per side), and report.html is self-contained and
well-formed (embedded PNGs only, SVG plots, no external resource).

    check_photo_ip.py DIR TASK[,TASK...] METHOD[,METHOD...] [MAX_DEGRADED]

METHOD lists the concrete names in order (degraded, wiener or bicubic, wiener-calibrated, uotip,
supervised); a name of another task is left out for it (wiener and wiener-calibrated belong to gb,
bicubic to sr). Every task records a calibration (the blur's sigma for gb, the factor for sr, and
the noise level) with finite estimates; sr's factor, read from the sizes, must be exactly 4.
"""
import json
import math
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_report import Checker  # noqa: E402

BASELINE = {"gb": "wiener", "sr": "bicubic"}
ONLY = {"wiener": "gb", "bicubic": "sr", "wiener-calibrated": "gb"}  # methods of one task only
SCALE = {"gb": 1, "sr": 4}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def main():
    folder, tasks, methods = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
    max_degraded = float(sys.argv[4]) if len(sys.argv) > 4 else 40.0
    with open(f"{folder}/results.json") as f:
        results = json.load(f)
    assert results["benchmark"] == "photo-ip"
    assert results["git_revision"] and results["machine"]["cpu"] and results["machine"]["threads"] >= 1
    photos = results["photos"]
    train, held = set(photos["train"]), set(photos["held_out"])
    assert train and held and not train & held, f"the split is not by image: train {train}, held out {held}"
    assert len(train) + len(held) == photos["count"], "the split does not cover every photo"
    assert [t["task"] for t in results["tasks"]] == tasks, f"tasks {[t['task'] for t in results['tasks']]}, expected {tasks}"
    files = 0
    for t in results["tasks"]:
        task = t["task"]
        expected = [m for m in methods if ONLY.get(m, task) == task]
        names = [m["name"] for m in t["methods"]]
        assert names == expected, f"{task}: methods {names}, expected {expected}"
        assert sorted(p["name"] for p in t["photos"]) == sorted(held), f"{task}: photos are not the held-out ones"
        cal = t["calibration"]
        assert cal["parameter"] == ("sigma" if task == "gb" else "factor") and cal["images"] >= 1, f"{task}: calibration {cal}"
        assert all(finite(cal[k]) and cal[k] > 0 for k in ("truth", "estimate", "noise_truth", "noise_estimate")), \
            f"{task}: calibration {cal}"
        if task == "sr":
            assert cal["estimate"] == 4, f"sr: the factor from the patch sizes is {cal['estimate']}, not 4"
        boxes = {p["name"]: p["box"] for p in t["photos"]}
        for name, box in boxes.items():
            mw, mh = png_size(box["measured"])
            assert (mw * SCALE[task], mh * SCALE[task]) == (box["width"], box["height"]), \
                f"{task}/{name}: measurement {mw}x{mh} does not match the photo's {box['width']}x{box['height']}"
        for m in t["methods"]:
            assert finite(m["psnr"]) and finite(m["ssim"]), f"{task}/{m['name']}: psnr {m['psnr']}, ssim {m['ssim']}"
            assert sorted(p["photo"] for p in m["photos"]) == sorted(held), f"{task}/{m['name']}: a photo is missing"
            for p in m["photos"]:
                where = f"{task}/{m['name']}/{p['photo']}"
                assert finite(p["psnr"]) and 0 < p["psnr"] < 100, f"{where}: psnr {p['psnr']}"
                assert finite(p["ssim"]) and -1 <= p["ssim"] <= 1, f"{where}: ssim {p['ssim']}"
                box = boxes[p["photo"]]
                assert png_size(p["file"]) == (box["width"], box["height"]), \
                    f"{where}: {p['file']} is {png_size(p['file'])}, the photo {box['width']}x{box['height']}"
                files += 1
            mean = sum(p["psnr"] for p in m["photos"]) / len(m["photos"])
            assert abs(mean - m["psnr"]) < 1e-6, f"{task}/{m['name']}: mean psnr {m['psnr']} is not the photos' mean {mean}"
            if m["name"] in ("uotip", "supervised"):
                assert m["curve"] and os.path.isfile(m["map"]), f"{task}/{m['name']}: no training curve or map"
            if m["name"] == "degraded":
                assert m["psnr"] < max_degraded, f"{task}: degraded psnr {m['psnr']} >= {max_degraded}"
    with open(f"{folder}/report.html") as f:
        html = f.read()
    checker = Checker()
    checker.feed(html)
    assert not checker.errors, checker.errors
    assert not [t for t in checker.stack if t not in ("html", "body", "head")], f"unclosed: {checker.stack}"
    external = re.findall(r'(?:src|href)="(?!data:)[^"]*"', html)
    assert not external, f"external resources: {external[:3]}"
    assert checker.counts.get("img", 0) >= len(tasks), "expected the crops of every task"
    assert checker.counts.get("svg", 0) >= 2 * len(tasks), "expected bar charts"
    assert checker.counts.get("table", 0) >= len(tasks)
    print(f"ok: {len(tasks)} task(s), {len(held)} held-out photos, {files} restored files, "
          f"{checker.counts.get('svg')} plots, {checker.counts.get('img')} image(s)")


if __name__ == "__main__":
    main()
