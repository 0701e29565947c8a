#!/usr/bin/env python3
"""Checks the output of `monge bench fmnist-classifier`: results.json parses, holds a finite
accuracy in [0, 1] per epoch and overall, FID sanity figures (self ~0, growing with noise), and
classifier.pt exists beside it.

    check_classifier.py DIR
"""
import json
import math
import os
import sys


def main():
    out = sys.argv[1]
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    errors = []
    if r.get("benchmark") != "fmnist-classifier":
        errors.append("benchmark is " + repr(r.get("benchmark")))
    acc = r.get("accuracy")
    if not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
        errors.append("accuracy is " + repr(acc))
    epochs = r.get("epochs", [])
    if not epochs or any(not 0 <= e["test_accuracy"] <= 1 or not math.isfinite(e["train_loss"]) for e in epochs):
        errors.append("epochs: " + repr(epochs))
    fid = r.get("fid", {})
    if not abs(fid.get("fid_self", 1)) < 1e-6:
        errors.append("fid of the test set against itself is " + repr(fid.get("fid_self")))
    noise = [s["fid"] for s in fid.get("noise", [])]
    if len(noise) < 2 or any(b <= a for a, b in zip(noise, noise[1:])) or noise[0] <= 0:
        errors.append("fid does not grow with noise: " + repr(noise))
    for key in ("machine", "settings", "git_revision", "seconds"):
        if key not in r:
            errors.append("missing " + key)
    if not os.path.getsize(os.path.join(out, "classifier.pt")) > 0:
        errors.append("classifier.pt is empty")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"results.json ok: accuracy {acc:.4f}, fid with noise {', '.join(f'{v:.3f}' for v in noise)}")


if __name__ == "__main__":
    main()
