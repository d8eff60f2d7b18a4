"""Advantage estimator ``median_baseline``: a group baseline robust to one outlier roll-out."""

from __future__ import annotations

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
