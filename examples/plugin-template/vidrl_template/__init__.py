"""A third-party vidrl plugin: the median-baseline advantage and a conciseness reward.

Copy this directory, rename the package and the entry point, and replace the two components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

import vidrl
from vidrl import ops


class MedianBaseline(vidrl.AdvantageEstimator):
    """A_i = (R_i − median_g R) · scale: a baseline robust to one outlier rollout. Shapes: [B] → [B].

    The median of an even-sized group is the lower of the two middle values (torch's rule).
    """

    name = "median_baseline"

    @dataclass(frozen=True)
    class Config:
        scale: float = 1.0

        def __post_init__(self) -> None:
            if not self.scale > 0:
                raise ValueError(f"scale must be > 0, got {self.scale!r}")

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        inverse, num_groups = ops.group_index(rewards.numel(), group_ids)
        medians = torch.stack([rewards[inverse == g].median() for g in range(num_groups)])
        _, _, _, zero_std = ops.group_stats(rewards.float(), inverse, num_groups)
        adv = (rewards - medians[inverse]) * self.config.scale
        return vidrl.Advantages(adv, zero_std, torch.ones(num_groups))


class Concise(vidrl.Reward):
    """1 − min(1, words / max_words): shorter responses score higher, an empty one scores 1."""

    name = "concise"

    @dataclass(frozen=True)
    class Config:
        max_words: int = 100

        def __post_init__(self) -> None:
            if self.max_words < 1:
                raise ValueError(f"max_words must be >= 1, got {self.max_words!r}")

    def __call__(self, responses: Sequence[str], samples: Sequence[vidrl.Sample]) -> list[float]:
        return [1.0 - min(1.0, len(r.split()) / self.config.max_words) for r in responses]


@vidrl.hookimpl
def register_advantage_estimators(register):
    register(MedianBaseline)


@vidrl.hookimpl
def register_rewards(register):
    register(Concise)
