"""The statistics of the algorithm comparisons: a mean with its 95 % bootstrap interval over
seeds, the paired difference of a variant to the baseline (the same seeds: the same data, SFT and
roll-out randomness) with its interval, and a verdict that says only what the interval supports.

Percentile bootstrap over seeds, resampled ``RESAMPLES`` times from a fixed generator, so a report
is reproducible. With five seeds the interval is wide; that is the point of stating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and its bootstrap interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap(
    values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval at ``level``: ``resamples``
    draws of len(values) values with replacement, the (1 − level)/2 and (1 + level)/2 quantiles of
    their means. One value (or all equal): the interval is that value."""
    if not values:
        raise ValueError("no values to summarise")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = torch.tensor(values, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(values), (resamples, len(values)), generator=g)
    means = x[picks].mean(1)
    low, high = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return Interval(float(x.mean()), float(low), float(high), len(values))


def paired(variant: dict[int, float], baseline: dict[int, float], **kw: float) -> Interval:
    """The mean difference variant − baseline over the seeds both have, with its interval."""
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        raise ValueError("the variant and the baseline share no seed")
    return bootstrap([variant[s] - baseline[s] for s in seeds], **kw)


def verdict(diff: Interval, higher_is_better: bool = True) -> str:
    """``better`` / ``worse`` when the paired interval excludes 0 (by the metric's direction),
    else ``no difference shown``; always with the numbers."""
    if diff.low > 0 or diff.high < 0:
        up = diff.low > 0
        word = "better" if up == higher_is_better else "worse"
    else:
        word = "no difference shown"
    return f"{word} (paired difference {diff}, {diff.n} seeds)"
