#!/usr/bin/env python3
"""Validates the toy suite's results.json: every toy has its discrete OT cost and every solver its
cost, ratio and fit as finite numbers consistent with each other."""
import json
import math
import sys

results = json.load(open(sys.argv[1]))
toys = {"eight_gaussians", "swiss_roll", "moons", "one_to_many", "unbalanced"}
solvers = {"otip", "uotip", "not", "knot", "otp", "gan_reg"}
assert set(results["toys"]) == toys, f"toys: {sorted(results['toys'])}"
for toy, entry in results["toys"].items():
    assert entry["ot_cost"] > 0 and math.isfinite(entry["ot_cost"]), (toy, entry["ot_cost"])
    assert entry["source_fit"] > 0, (toy, entry["source_fit"])
    assert set(entry["solvers"]) == solvers, (toy, sorted(entry["solvers"]))
    for name, r in entry["solvers"].items():
        for key in ("cost", "ratio", "fit", "energy", "seconds"):
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (toy, name, key, r.get(key))
        assert abs(r["ratio"] - r["cost"] / entry["ot_cost"]) < 1e-9 * max(1, r["ratio"]), (toy, name)
        assert r["solved"] == (r["fit"] < 0.05 and r["ratio"] < 1.25), (toy, name)
        if toy == "unbalanced":
            assert 0 <= r["crossing"] <= 1, (toy, name, r["crossing"])
    if toy == "unbalanced":
        # Exact OT must carry about 60% of the right-hand mode across (its mass 0.5 -> 0.2).
        assert 0.45 < entry["exact_crossing"] < 0.75, entry["exact_crossing"]
        assert entry["unbalanced_crossing"] < entry["exact_crossing"], entry
print(f"check_toys: {len(toys)} toys x {len(solvers)} solvers valid")
