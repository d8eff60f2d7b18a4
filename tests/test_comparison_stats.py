"""benchmarks/algorithms/stats.py: bootstrap intervals behave as intervals, paired differences
use the shared seeds, and verdicts say only what the interval supports."""

import importlib.util
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "comparison_stats", Path(__file__).parents[1] / "benchmarks" / "algorithms" / "stats.py"
)
stats = sys.modules["comparison_stats"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(stats)


def test_the_interval_of_many_normal_values_is_the_normal_one():
    """400 draws of N(2, 1): the bootstrap interval ≈ mean ± 1.96 σ / √n (within 10 %)."""
    x = (torch.randn(400, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 2).tolist()
    got = stats.bootstrap(x)
    half = 1.96 * statistics.stdev(x) / math.sqrt(len(x))
    assert got.mean == pytest.approx(statistics.mean(x), abs=1e-12)
    assert got.low == pytest.approx(got.mean - half, abs=0.1 * half)
    assert got.high == pytest.approx(got.mean + half, abs=0.1 * half)


def test_intervals_hold_the_mean_narrow_with_level_and_collapse_on_equal_values():
    x = [0.2, 0.5, 0.4, 0.9, 0.1]
    wide, narrow = stats.bootstrap(x, level=0.99), stats.bootstrap(x, level=0.5)
    assert wide.low <= narrow.low <= narrow.mean <= narrow.high <= wide.high and wide.mean == pytest.approx(
        0.42
    )
    assert min(x) <= wide.low and wide.high <= max(x)
    flat = stats.bootstrap([0.3] * 5)
    assert (flat.low, flat.mean, flat.high) == pytest.approx((0.3, 0.3, 0.3))
    assert stats.bootstrap(x) == stats.bootstrap(x)  # a fixed generator: reproducible reports


def test_paired_differences_and_verdicts():
    base = {0: 0.40, 1: 0.50, 2: 0.30, 3: 0.60, 4: 0.45}
    better = {s: v + 0.05 + 0.01 * s for s, v in base.items()}
    diff = stats.paired(better, base)
    assert diff.n == 5 and diff.mean == pytest.approx(0.07) and diff.low > 0
    assert stats.verdict(diff).startswith("better (paired difference 0.070 [")
    assert stats.verdict(diff, higher_is_better=False).startswith("worse")
    noisy = {0: 0.45, 1: 0.45, 2: 0.35, 3: 0.55, 4: 0.45, 9: 1.0}  # seed 9: not in the baseline
    tie = stats.paired(noisy, base)
    assert tie.n == 5 and tie.low < 0 < tie.high and stats.verdict(tie).startswith("no difference shown")
    with pytest.raises(ValueError, match="share no seed"):
        stats.paired({7: 1.0}, base)
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap([])


def test_claims_are_judged_on_the_final_evaluation_and_paired_by_seed():
    spec = importlib.util.spec_from_file_location(
        "compare", Path(__file__).parents[1] / "benchmarks" / "algorithms" / "compare.py"
    )
    compare = sys.modules["compare"] = importlib.util.module_from_spec(spec)  # its dataclass looks it up
    spec.loader.exec_module(compare)

    def run(after, zero_std):  # one run's rows: RL steps, an evaluation between stages, the final one
        return [{"reward/mean": 0.5, "adv/zero_std_frac": z} for z in zero_std] + [
            {"eval": "stage-0-sft", "eval/accuracy": 0.9},
            {"eval": "after", "eval/accuracy": after},
        ]

    seeds = [0, 1, 2, 3, 4]
    results = {"grpo": [run(0.4 + 0.01 * s, [0.5, 0.3]) for s in seeds],
               "dgrpo": [run(0.5 + 0.01 * s, [0.2, 0.2]) for s in seeds]}  # fmt: skip
    assert compare.seed_values(results, seeds, "dgrpo", "eval/accuracy") == pytest.approx(
        {s: 0.5 + 0.01 * s for s in seeds}
    )
    assert compare.seed_values(results, seeds, "grpo", "adv/zero_std_frac") == pytest.approx(
        {s: 0.4 for s in seeds}
    )
    (line,) = [x for x in compare.verdicts("dgrpo", results, seeds).splitlines() if x.startswith("- ")]
    assert (
        "grpo 0.420 [" in line
        and "dgrpo 0.520 [" in line
        and "better (paired difference 0.100 [0.100, 0.100], 5" in line
    )
