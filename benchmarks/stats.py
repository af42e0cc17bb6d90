"""Percentiles and the table every benchmark prints."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples_ms, 0.50),
        "p90": percentile(samples_ms, 0.90),
        "p99": percentile(samples_ms, 0.99),
        "mean": statistics.fmean(samples_ms),
    }


def print_table(title: str, rows: dict[str, list[float]], reference: str) -> None:
    base = summary(rows[reference])
    print(f"\n{title}")
    print(f"{'path':<44} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'p50 ratio':>9}")
    for name, samples in rows.items():
        stats = summary(samples)
        ratio = stats["p50"] / base["p50"] if base["p50"] else float("nan")
        print(
            f"{name:<44} {len(samples):>5} {stats['p50']:>8.2f} {stats['p90']:>8.2f} {stats['p99']:>8.2f}"
            f" {stats['mean']:>8.2f} {ratio:>8.2f}x"
        )
