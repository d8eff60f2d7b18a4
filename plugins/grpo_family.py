"""The GRPO family of advantage estimators (shared/ALGORITHMS.md §0): GRPO, Dr. GRPO, RLOO.

All three are thin configurations of the primitive ``vidrl.ops.group_advantages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

import vidrl
from vidrl import ops

Singleton = Literal["zero", "raw"]


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def _advantages(rewards: torch.Tensor, group_ids: torch.Tensor, **kwargs: object) -> vidrl.Advantages:
    adv, zero_std = ops.group_advantages(rewards, group_ids, **kwargs)
    return vidrl.Advantages(adv, zero_std, torch.ones_like(zero_std, dtype=adv.dtype))


class GRPO(vidrl.AdvantageEstimator):
    """A_i = (R_i − mean_g R) / (std_g R + eps), or R_i − mean_g R when ``scale_std`` is off.

    Defaults follow verl's statistics (unbiased std, eps 1e-6) with TRL's singleton rule (A = 0);
    ``eps: 1e-4`` gives TRL's, ``singleton: raw`` verl's singleton rule. Shapes: [B] → [B].
    """

    name = "grpo"

    @dataclass(frozen=True)
    class Config:
        scale_std: bool = True
        std: Literal["unbiased", "biased"] = "unbiased"
        eps: float = 1e-6
        singleton: Singleton = "zero"

        def __post_init__(self) -> None:
            _check_eps(self.eps)

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        c = self.config
        mode = "mean_std" if c.scale_std else "mean"
        return _advantages(rewards, group_ids, mode=mode, std=c.std, eps=c.eps, singleton=c.singleton)


class _CentredOnly(vidrl.AdvantageEstimator):
    """An estimator with a fixed ``mode`` of the primitive and only the singleton rule to choose."""

    mode: ClassVar[str]

    @dataclass(frozen=True)
    class Config:
        singleton: Singleton = "zero"

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        return _advantages(rewards, group_ids, mode=self.mode, singleton=self.config.singleton)


class DrGRPO(_CentredOnly):
    """Dr. GRPO: A_i = R_i − mean_g R (no std scaling). Shapes: [B] → [B]."""

    name = "dr_grpo"
    mode = "mean"


class RLOO(_CentredOnly):
    """RLOO: A_i = R_i − mean_{j≠i} R_j over the group. Shapes: [B] → [B]."""

    name = "rloo"
    mode = "leave_one_out"


@vidrl.hookimpl
def register_advantage_estimators(register):
    register(GRPO)
    register(DrGRPO)
    register(RLOO)
