#!/usr/bin/env python3
"""Plots the refresh-storm wait distribution written by `cargo bench --bench storm`.

Usage: pip install matplotlib==3.9.2 && python3 scripts/plot_storm.py [CSV] [PNG]
(defaults: target/storm-waits.csv -> docs/storm-waits.png)
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source = sys.argv[1] if len(sys.argv) > 1 else "target/storm-waits.csv"
target = sys.argv[2] if len(sys.argv) > 2 else "docs/storm-waits.png"

with open(source, newline="") as f:
    waits_ms = sorted(int(row["wait_us"]) / 1000 for row in csv.DictReader(f))

n = len(waits_ms)
fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
hist.hist(waits_ms, bins=60, color="#3b6ea5")
hist.set_xlabel("wait (ms)")
hist.set_ylabel("callers")
hist.set_title(f"waits of {n} callers at an expired token (all rounds)")
cdf.plot(waits_ms, [(i + 1) / n for i in range(n)], color="#3b6ea5")
for q in (0.5, 0.99):
    v = waits_ms[min(n - 1, round((n - 1) * q))]
    cdf.axvline(v, linestyle="--", color="grey")
    cdf.text(v, q, f" p{int(q * 100)} {v:.1f} ms", va="bottom")
cdf.set_xlabel("wait (ms)")
cdf.set_ylabel("fraction of callers")
cdf.set_title("cumulative: one shared renewal (20 ms endpoint)")
fig.tight_layout()
fig.savefig(target, dpi=100)
print(f"wrote {target}")
