"""Typed data passed between the engine and components. Shapes: B rollouts, T response tokens.

These are the engine-facing contracts; later capabilities extend them by adding fields with
defaults, so components written against an older version keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

TASK_TYPES = ("multiple_choice", "numeric", "temporal_grounding", "grounded_qa", "free_form")


@dataclass(frozen=True)
class Sample:
    """One prompt of a data set.

    ``video`` is a path under the data set's root, or None for image or text-only samples;
    ``span`` is the ground-truth (start, end) in seconds for grounding tasks; ``duration`` the
    video's length in seconds when known.
    """

    id: str
    question: str
    answer: str
    task_type: str = "free_form"
    video: str | None = None
    images: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    span: tuple[float, float] | None = None
    duration: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(
                f"Sample {self.id!r}: unknown task_type {self.task_type!r}; valid: {', '.join(TASK_TYPES)}"
            )


@dataclass(frozen=True)
class Advantages:
    """What an advantage estimator returns.

    ``advantages``: [B] (one per rollout) or [B, T] (per token), float32.
    ``zero_std``: [num_groups] bool, True where all rewards of the group are equal (those groups
    get advantage 0 exactly). Groups are ordered by ascending group id.
    ``group_weights``: [num_groups] float, the per-group multiplier applied (ones when none).
    """

    advantages: torch.Tensor
    zero_std: torch.Tensor
    group_weights: torch.Tensor

    @property
    def zero_std_frac(self) -> float:
        """Share of groups whose rewards were all equal: the metric ``adv/zero_std_frac``."""
        return float(self.zero_std.float().mean()) if self.zero_std.numel() else 0.0


@dataclass(frozen=True)
class LossInputs:
    """Everything a policy loss sees for one micro-batch.

    ``logprobs``: [B, T] log π_θ of the response tokens (with grad). ``old_logprobs`` and
    ``ref_logprobs``: [B, T] under the rollout policy and the reference, or None when the loss does
    not declare the need. ``advantages``: [B] or [B, T]. ``mask``: [B, T], 1 on trained tokens and
    0 on padding and tool observations. ``group_ids``: [B] long. ``step_tokens`` and
    ``step_sequences``: the mask's token count and the sequence count of the *whole optimizer step*
    (every micro-batch, every rank), computed before the micro-batch loop, so that gradient
    accumulation and data parallelism do not change the loss (``vidrl.ops.aggregate``).
    """

    logprobs: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    group_ids: torch.Tensor
    step_tokens: float
    step_sequences: float
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None


@dataclass(frozen=True)
class LossOutput:
    """A scalar ``loss`` to backpropagate and float ``metrics`` to log (e.g. ``{"kl": 0.01}``)."""

    loss: torch.Tensor
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeItem:
    """One response put to a judge: the prompt's ``question``, the response's ``reasoning`` (its
    thinking, possibly empty) and its final ``answer``."""

    question: str
    reasoning: str
    answer: str


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one ``JudgeItem``: ``consistent`` (the reasoning supports the
    answer), the judge's raw ``output``, and whether that output could be ``parsed`` (an
    unparseable output is a verdict of Inconsistent)."""

    consistent: bool
    output: str
    parsed: bool
