"""Pure arithmetic over measurements: percentiles, medians, pairwise ratios."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"{p} is not a percentile: use 0 to 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class PairedSummary:
    """A path measured next to the direct path, run by run: medians and per-run comparisons."""

    path_median: float
    direct_median: float
    ratio_median: float  # median over runs of path/direct
    difference_median: float  # median over runs of path - direct


def paired(path_runs: Sequence[float], direct_runs: Sequence[float]) -> PairedSummary:
    """Compare each run with the direct measurement taken next to it, then take medians."""
    if len(path_runs) != len(direct_runs):
        raise ValueError(f"{len(path_runs)} path runs but {len(direct_runs)} direct runs")
    if not path_runs:
        raise ValueError("no runs to compare")
    ratios = [p / d if d else math.inf for p, d in zip(path_runs, direct_runs, strict=True)]
    differences = [p - d for p, d in zip(path_runs, direct_runs, strict=True)]
    return PairedSummary(
        median(path_runs), median(direct_runs), median(ratios), median(differences)
    )


def medians_by_key(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the median over runs of that key's value (keys every run has)."""
    if not runs:
        return {}
    keys = set(runs[0]).intersection(*runs[1:])
    return {key: median([run[key] for run in runs]) for key in sorted(keys)}


def growth_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """The slope of log(time) against log(size) by least squares: 1 is linear, 2 quadratic."""
    if len(sizes) != len(times) or len(sizes) < 2:
        raise ValueError("need at least two (size, time) points")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise ValueError("sizes must differ")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
