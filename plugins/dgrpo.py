"""DGRPO, difficulty-aware GRPO (VITAL, arXiv:2508.04416; docs/algorithms.md, 'DGRPO — specification'),
as the advantage estimator ``dgrpo``.

The ordinary group advantage is computed first, then multiplied per group by
w_g = (clamp(c − μ_g, 0, 1) + 1) / 2, μ_g the group's mean total reward: groups whose mean reward
is at most c − 1 (hard) keep their full advantage, groups at or above c (easy) are halved. This
follows the authors' released code (the paper words it as scaling the reward, which the std
normalisation would cancel). The weight goes into ``vidrl.ops.group_advantages`` as per-group
weights, so the fused kernel serves DGRPO on GPU in the same single launch as GRPO.

The task-level half of DGRPO, the (α, β) cut of the temporal-IoU reward per task type and data
source, lives in that reward's options (plugin ``rewards``, reward ``temporal_iou``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import vidrl
from vidrl import ops


def difficulty_weights(group_means: torch.Tensor, c: float) -> torch.Tensor:
    """w_g = (clamp(c − μ_g, 0, 1) + 1) / 2 for group means [G] → [G], in [0.5, 1]."""
    return ((c - group_means).clamp(0.0, 1.0) + 1.0) / 2.0


class DGRPO(vidrl.AdvantageEstimator):
    """A_i = w_g · (R_i − mean_g R) / (std_g R + eps) (without the std when ``scale_std`` is off).

    ``c`` should track the highest total reward a rollout can reach (2.0 in the released code,
    where accuracy and format rewards add up to 2). Other options as for ``grpo``.
    Shapes: rewards [B], group ids [B] → advantages [B]; group weights [num_groups].
    """

    name = "dgrpo"

    @dataclass(frozen=True)
    class Config:
        c: float = 2.0
        scale_std: bool = True
        std: Literal["unbiased", "biased"] = "unbiased"
        eps: float = 1e-6
        singleton: Literal["zero", "raw"] = "zero"

        def __post_init__(self) -> None:
            if not self.eps >= 0:
                raise ValueError(f"eps must be >= 0, got {self.eps!r}")

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        c = self.config
        inverse, n = ops.group_index(rewards.numel(), group_ids)
        _, means, _, _ = ops.group_stats(rewards.float(), inverse, n, c.std)
        weights = difficulty_weights(means, c.c)
        mode = "mean_std" if c.scale_std else "mean"
        adv, zero_std = ops.group_advantages(
            rewards, group_ids, mode=mode, std=c.std, eps=c.eps, singleton=c.singleton, weights=weights
        )
        return vidrl.Advantages(adv, zero_std, weights)


@vidrl.hookimpl
def register_advantage_estimators(register):
    register(DGRPO)
