#!/usr/bin/env python3
"""Checks the output of `monge bench fmnist-paper`: results.json has every selected experiment with
a finite row per setting and method, the structure each experiment promises, numbers that agree
with each other, and report.html is well-formed and self-contained (images embedded, plots as
inline SVG, nothing loaded from elsewhere).

    check_paper.py DIR EXPERIMENT[,EXPERIMENT...] [FMNIST_IP_DIR]

With FMNIST_IP_DIR (a `monge bench fmnist-ip` output of the same config, task and classifier), the
tau sweep's x1 run must reproduce fmnist-ip's uotip exactly: both use the shared recipe
(monge.fmnist), so any difference means the recipes drifted apart.
"""
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_report import Checker  # noqa: E402

METRICS = ("psnr", "psnr_std", "ssim", "ssim_std", "fid", "accuracy")
LEVELS = [0.025, 0.05, 0.1, 0.2]
FACTORS = [0.25, 0.5, 1, 2, 4]


def finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fail(msg):
    raise SystemExit(f"check_paper: FAIL: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def rows_of(exp, method, setting=None):
    return [r for r in exp["rows"] if r["method"] == method and (setting is None or r["setting"] == setting)]


def one(exp, method, **where):
    found = [r for r in exp["rows"] if r["method"] == method and all(r.get(k) == v for k, v in where.items())]
    check(len(found) == 1, f"expected one {method} row with {where}, found {len(found)}")
    return found[0]


def check_rows(name, exp):
    check(exp["rows"], f"{name}: no rows")
    for r in exp["rows"]:
        where = f"{name}/{r.get('setting')}/{r.get('method')}"
        check(isinstance(r.get("setting"), str) and isinstance(r.get("method"), str), f"{where}: setting and method")
        for key in METRICS:
            check(finite(r.get(key)), f"{where}: {key} = {r.get(key)}")
        check(0 < r["psnr"] < 100 and -1 <= r["ssim"] <= 1 and r["fid"] > -1e-6 and 0 <= r["accuracy"] <= 1,
              f"{where}: scores out of range {[r[k] for k in METRICS]}")
        check(r["psnr_std"] >= 0 and r["ssim_std"] >= 0, f"{where}: negative spread")
    for run in exp["runs"]:
        where = f"{name}/{run.get('run')}"
        check(run["curve"] and all(finite(p[1]) for p in run["curve"]), f"{where}: curve {run.get('curve')}")
        check(run["curve"][-1][0] == exp["iterations"], f"{where}: the curve ends at {run['curve'][-1][0]}, not {exp['iterations']}")
        check(finite(run["seconds"]) and run["seconds"] > 0, f"{where}: seconds")
        check(finite(run["its_per_second"]) and run["its_per_second"] > 0, f"{where}: its_per_second")
        check(run["losses"]["loss_map"], f"{where}: no map losses")
        check(os.path.isfile(run["map"]), f"{where}: no map file {run['map']}")
    trained = [m for m in exp["methods"] if m != "degraded"]
    for r in exp["rows"]:
        if r["method"] in trained:
            check(finite(r.get("train_seconds")), f"{name}/{r['setting']}/{r['method']}: train_seconds")


def last_psnr(exp, run_name):
    runs = [r for r in exp["runs"] if r["run"] == run_name]
    check(len(runs) == 1, f"no run {run_name}")
    return runs[0]["curve"][-1][1]


def check_multi_noise(exp):
    s = exp["settings"]
    check(s["levels"] == LEVELS and s["weights"] == [4, 3, 2, 1], f"multi-noise settings {s}")
    for m in exp["methods"]:
        per_level = [one(exp, m, x=sigma)["psnr"] for sigma in LEVELS]
        overall = one(exp, m, setting="all levels")
        # The pooled PSNR is the mean over all images, the four levels having as many each.
        check(abs(overall["psnr"] - sum(per_level) / 4) < 1e-4, f"multi-noise/{m}: overall {overall['psnr']} vs levels {per_level}")
        if m == "degraded":
            check(all(a > b for a, b in zip(per_level, per_level[1:])), f"degraded PSNR must fall as sigma grows: {per_level}")
    check(len(exp["runs"]) == len([m for m in exp["methods"] if m != "degraded"]), "multi-noise: one run per trained method")


def check_imbalance(exp):
    s = exp["settings"]
    check(s["ks"], "imbalance: no k")
    check(finite(s["clean_accuracy"]) and 0 <= s["clean_accuracy"] <= 1, "imbalance: clean accuracy")
    check(s["test_images"][0] == s["test_images"][1] > 0, f"imbalance: test set not 1:1 {s['test_images']}")
    check(s["measured_images"][0] == s["measured_images"][1] > 0, f"imbalance: measurements not 1:1 {s['measured_images']}")
    for c in s["clean_counts"]:
        k, n0, n1 = c["k"], c["class0"], c["class1"]
        check(n0 + n1 == s["clean_images"] and n1 > 0, f"imbalance: clean counts {c}")
        check(abs(n0 - k * n1) <= k + 1, f"imbalance: clean counts {c} are not {k}:1")
    for m in exp["methods"]:
        if m == "degraded":
            one(exp, m, setting="every k")
            continue
        for k in s["ks"]:
            r = one(exp, m, x=k)
            # The trainer's last evaluation scores the same frozen test measurements.
            check(abs(last_psnr(exp, f"{m}-k{k}") - r["psnr"]) < 1e-3, f"imbalance/{m}/k={k}: curve and row disagree")


def check_noise_types(exp):
    names = [n["name"] for n in exp["settings"]["noises"]]
    check(names == ["laplace", "poisson"], f"noise-types: noises {names}")
    check(abs(exp["settings"]["noises"][0]["params"]["b"] - 0.05 / math.sqrt(2)) < 1e-9, "noise-types: Laplace b")
    check(exp["settings"]["noises"][1]["params"]["lambda"] == 1, "noise-types: Poisson lambda")
    for noise in names:
        for m in exp["methods"]:
            r = one(exp, m, setting=noise)
            if m != "degraded":
                check(abs(last_psnr(exp, f"{noise}-{m}") - r["psnr"]) < 1e-3, f"noise-types/{noise}/{m}: curve and row disagree")


def check_tau_sweep(exp):
    s = exp["settings"]
    check(s["factors"] == FACTORS and finite(s["base_tau"]), f"tau-sweep settings {s}")
    if "uotip" in exp["methods"]:
        for f in FACTORS:
            r = one(exp, "uotip", x=f)
            check(f"{s['base_tau'] * f:g}" in r["setting"], f"tau-sweep: setting {r['setting']} for x{f}")
            check(abs(last_psnr(exp, f"uotip-x{f:g}") - r["psnr"]) < 1e-3, f"tau-sweep/x{f}: curve and row disagree")


def check_html(path, experiments):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    checker = Checker()
    checker.feed(text)
    check(not checker.errors, f"report.html: {checker.errors}")
    check(not [t for t in checker.stack if t not in ("html", "body", "head")], f"report.html: unclosed {checker.stack}")
    # Self-contained: every src is a data: URI, and nothing is fetched (no link, script src, url(), http).
    for src in re.findall(r'\bsrc="([^"]*)"', text):
        check(src.startswith("data:image/png;base64,"), f"report.html loads {src[:60]}")
    check(not re.search(r"<link\b|<script\b[^>]*\bsrc=|url\(|https?://(?!www\.w3\.org/2000/svg)", text),
          "report.html refers to something outside itself")
    check(checker.counts.get("img", 0) >= len(experiments), f"report.html: {checker.counts.get('img', 0)} images")
    check(checker.counts.get("svg", 0) >= 2 * len(experiments), f"report.html: {checker.counts.get('svg', 0)} plots")
    check(checker.counts.get("table", 0) >= len(experiments), "report.html: a table per experiment")
    for e in experiments:
        check(f"<h2>{e}</h2>" in text, f"report.html: no section {e}")
    return checker.counts


def main():
    if len(sys.argv) < 3:
        fail("usage: check_paper.py DIR EXPERIMENT[,EXPERIMENT...] [FMNIST_IP_DIR]")
    folder, experiments = sys.argv[1], sys.argv[2].split(",")
    with open(f"{folder}/results.json") as f:
        results = json.load(f)
    check(results["benchmark"] == "fmnist-paper", "benchmark name")
    check(isinstance(results["git_revision"], str) and results["git_revision"], "git revision")
    check(isinstance(results["machine"]["cpu"], str) and results["machine"]["threads"] >= 1, "machine")
    check(finite(results["settings"]["classifier"]["clean_accuracy"]), "classifier accuracy")
    check(sorted(results["experiments"]) == sorted(experiments), f"experiments {sorted(results['experiments'])}")
    checks = {"multi-noise": check_multi_noise, "imbalance": check_imbalance, "noise-types": check_noise_types,
              "tau-sweep": check_tau_sweep}
    rows = 0
    for name in experiments:
        exp = results["experiments"][name]
        check_rows(name, exp)
        checks[name](exp)
        check(os.path.isfile(exp["grid_file"]), f"{name}: no grid {exp['grid_file']}")
        rows += len(exp["rows"])
    if len(sys.argv) > 3:
        with open(f"{sys.argv[3]}/results.json") as f:
            ip = json.load(f)
        uotip = [m for m in ip["methods"] if m["name"] == "uotip"][0]
        exp = results["experiments"]["tau-sweep"]
        x1 = one(exp, "uotip", x=1)
        for key in ("psnr", "ssim", "fid", "accuracy"):
            check(abs(x1[key] - uotip[key]) <= 1e-6 * max(1, abs(uotip[key])),
                  f"tau-sweep x1 {key} {x1[key]} differs from fmnist-ip's uotip {uotip[key]}: the recipes drifted apart")
        check(last_psnr(exp, "uotip-x1") == uotip["curve"][-1][1], "tau-sweep x1 curve differs from fmnist-ip's uotip")
    counts = check_html(f"{folder}/report.html", experiments)
    print(f"check_paper: ok: {len(experiments)} experiments, {rows} rows, {counts.get('svg')} plots, {counts.get('img')} images")


if __name__ == "__main__":
    main()
