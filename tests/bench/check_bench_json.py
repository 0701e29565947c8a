#!/usr/bin/env python3
"""Checks results.json of `monge bench apply` / `monge bench batch`: it parses and holds exactly the
keys the benchmark wrote when it formatted the file by hand (before monge.json.encode), with values
of the types it wrote then (numbers, or null where a run or a comparison is missing).

    check_bench_json.py apply|batch OUT_DIR
"""
import json
import math
import sys

NUM, STR, BOOL = "number", "string", "boolean"
RUN = {"seconds": NUM, "mpix_per_s": NUM, "network_mpix_per_s": NUM, "ratio_to_network": NUM, "peak_rss_mib": NUM}
ACCURACY = {"max_levels": NUM, "p999_levels": NUM, "within_1_level": NUM, "mean_levels": NUM, "samples": NUM}
SCHEMAS = {
    "apply": {
        "benchmark": STR,
        "machine": {"cpu": STR, "threads": NUM, "device": STR, "cpu_bf16_native": BOOL},
        "git_revision": STR, "network": STR, "tile": NUM, "precisions": [STR], "note": STR,
        "sizes": [{"mpix": NUM, "side": NUM, "fp32": RUN, "bf16": RUN, "fp32_uncached": RUN, "bf16_speedup": NUM,
                   "bf16_network_speedup": NUM, "bf16_vs_fp32": ACCURACY,
                   "speedup_over_fp32_uncached": {"fp32": NUM, "bf16": NUM}}],
    },
    "batch": {
        "benchmark": STR,
        "machine": {"cpu": STR, "cores": NUM, "cpu_bf16_native": BOOL},
        "git_revision": STR, "images": NUM, "mpix": NUM, "network": {"name": STR, "channels": NUM, "depth": NUM},
        "note": STR, "network_images_per_s_224": "precisions",
        "bf16_vs_fp32": {"setting": STR, "bf16_speedup": NUM, "max_levels": NUM, "p999_levels": NUM,
                         "within_1_level": NUM, "mean_levels": NUM},
        "settings": [{"setting": STR, "precision": STR, "processes": NUM, "threads": NUM, "seconds": NUM,
                      "images_per_s": NUM, "mpix_per_s": NUM, "speedup": NUM}],
    },
}


def check(value, schema, where, precisions):
    if value is None and schema not in (STR, BOOL) and where.split(".")[-1] != "benchmark":
        return  # a run or a comparison left out: null, as before
    if schema == NUM:
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f"{where}: {value!r}"
    elif schema == STR:
        assert isinstance(value, str), f"{where}: {value!r}"
    elif schema == BOOL:
        assert isinstance(value, bool), f"{where}: {value!r}"
    elif schema == "precisions":
        assert isinstance(value, dict) and sorted(value) == sorted(precisions), f"{where}: {value!r} for {precisions}"
        for k, v in value.items():
            check(v, NUM, f"{where}.{k}", precisions)
    elif isinstance(schema, list):
        assert isinstance(value, list) and value, f"{where}: {value!r}"
        for i, item in enumerate(value):
            check(item, schema[0], f"{where}[{i}]", precisions)
    else:
        assert isinstance(value, dict), f"{where}: {value!r}"
        assert set(value) == set(schema), f"{where}: keys {sorted(value)}, expected {sorted(schema)}"
        for k, s in schema.items():
            check(value[k], s, f"{where}.{k}", precisions)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    with open(f"{out}/results.json") as f:
        r = json.load(f)
    assert r["benchmark"] == kind, r["benchmark"]
    precisions = sorted({s["precision"] for s in r["settings"]}) if kind == "batch" else r["precisions"]
    check(r, SCHEMAS[kind], kind, precisions)
    print(f"check_bench_json: {out}/results.json holds the keys and value types of `monge bench {kind}`")


if __name__ == "__main__":
    main()
