"""Composing rewards: the weighted total of the configured rewards, and per-reward scores.

A reward that raises, returns the wrong number of scores, or returns NaN/inf is an error naming
the reward and the sample: a bad score is never averaged away. A reward may return None for a
response it declines to score ("no opinion"); a sample no reward scores is left out of its group's
statistics (``Scores.scored``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from vidrl.errors import ComponentError
from vidrl.plugin.components import Reward, owner
from vidrl.types import Sample, Scores


class RewardError(ComponentError):
    """A reward function failed or returned a non-finite score; the message names the reward, its
    plugin and the sample."""


def score(
    rewards: Sequence[tuple[str, float, Reward]], responses: Sequence[str], samples: Sequence[Sample]
) -> Scores:
    """Apply each (name, weight, reward) to the responses of the samples it applies to."""
    if len(responses) != len(samples):
        raise ValueError(f"{len(responses)} responses for {len(samples)} samples")
    total = torch.zeros(len(samples), dtype=torch.float64)
    per: dict[str, torch.Tensor] = {}
    for name, weight, reward in rewards:
        idx = [
            i for i, s in enumerate(samples) if reward.task_types is None or s.task_type in reward.task_types
        ]
        col = torch.full((len(samples),), math.nan, dtype=torch.float64)
        if idx:
            values = _call(name, reward, [responses[i] for i in idx], [samples[i] for i in idx])
            col[idx] = torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float64)
            total += weight * torch.nan_to_num(col, nan=0.0)
        per[name] = col
    return Scores(total.float(), {k: v.float() for k, v in per.items()})


def _call(name: str, reward: Reward, responses: list[str], samples: list[Sample]) -> list[float | None]:
    who = f"reward {name!r} ({owner(reward)})"
    try:
        values = [None if v is None else float(v) for v in reward(responses, samples)]
    except Exception as e:
        ids = ", ".join(s.id for s in samples[:5])
        raise RewardError(f"{who} raised on samples [{ids}...]: {type(e).__name__}: {e}") from e
    if len(values) != len(samples):
        raise RewardError(f"{who} returned {len(values)} scores for {len(samples)} responses")
    for v, s in zip(values, samples, strict=True):
        if v is not None and not math.isfinite(v):
            raise RewardError(f"{who} returned {v} for sample {s.id!r}")
    return values
