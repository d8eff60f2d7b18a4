"""Optimizer and learning-rate schedule of a training stage (AdamW with warm-up, then constant,
linear or cosine decay to ``min_lr_ratio`` · lr)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class OptimConfig:
    """AdamW options and the schedule; ``max_grad_norm`` 0 disables clipping."""

    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.max_grad_norm < 0:
            raise ValueError(f"need lr > 0 and weight_decay, warmup_steps, max_grad_norm >= 0; got {self}")
        if not 0 <= self.min_lr_ratio <= 1 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"need 0 <= min_lr_ratio <= 1 and 0 <= betas < 1; got {self}")


def lr_factor(config: OptimConfig, step: int, total: int) -> float:
    """The multiplier of ``config.lr`` at optimizer step ``step`` (0-based) of ``total``."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    if config.schedule == "constant":
        return 1.0
    span = max(1, total - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    decay = 1 - progress if config.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * decay


def build_optimizer(model: Any, config: OptimConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parameters and its ``LambdaLR`` schedule over ``total_steps``
    optimizer steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(config, step, total_steps))
    return opt, sched
