"""Typed data passed between the engine and components. Shapes: B rollouts, T response tokens.

These are the engine-facing contracts; later capabilities extend them by adding fields with
defaults, so components written against an older version keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


@dataclass(frozen=True)
class VideoInfo:
    """What a backend reads from a file's header: frame count, fps, duration (s), size (px)."""

    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class Frames:
    """Decoded frames. ``pixels``: [F, H, W, 3] uint8 RGB; ``times``: [F] float seconds (each
    frame's presentation time, index / fps); ``indices``: [F] long frame indices in the file."""

    pixels: torch.Tensor
    times: torch.Tensor
    indices: torch.Tensor
    info: VideoInfo

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sampled clip, as the processors' metadata expects."""
        if len(self.times) < 2:
            return self.info.fps
        span = float(self.times[-1] - self.times[0])
        return (len(self.times) - 1) / span if span > 0 else self.info.fps


@dataclass(frozen=True)
class Sampling:
    """Sampling options of a roll-out; ``temperature`` 0 decodes greedily."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1; got {self}")


@dataclass(frozen=True)
class Generation:
    """``prompt``: the repeated prompt batch (input_ids [B, L] and vision inputs);
    ``response_ids`` [B, T]; ``response_mask`` [B, T], 1 on the tokens the policy produced (up to
    and including the end-of-turn token), 0 after them.

    A multi-turn (tool) roll-out's response also holds tool observations, vision tokens
    included: then ``response_attention`` [B, T] is 1 on every real token (observations too, which
    the mask leaves out of the loss), ``response_types`` [B, T] their ``mm_token_type_ids``, and
    ``clip_rows`` [C] the row of each clip in the prompt's vision inputs (a row may own several:
    its prompt's video, then each observation's, in order)."""

    prompt: dict[str, Any]
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    response_attention: torch.Tensor | None = None
    response_types: torch.Tensor | None = None
    clip_rows: torch.Tensor | None = None


Regenerate = Callable[[Sequence[Sample], Sequence[Frames | None]], tuple[list[list[str]], list[list[float]]]]


@dataclass(frozen=True)
class AugmentInput:
    """What an augmenter sees after the first roll-out: per prompt p, ``samples[p]``,
    ``clips[p]`` (decoded frames or None), ``group_means[p]`` (mean total reward of its G
    rollouts), ``texts[p]`` and ``rewards[p]`` (G each); ``regenerate(samples, clips)`` rolls
    out G responses for other prompts with the current policy and returns their texts and total
    rewards (e.g. ground-truth-conditioned prompts, for hints)."""

    samples: list[Sample]
    clips: list[Frames | None]
    group_means: list[float]
    texts: list[list[str]]
    rewards: list[list[float]]
    regenerate: Regenerate


@dataclass(frozen=True)
class Augmented:
    """A replacement prompt: the sample (recording what was done in ``metadata["augment"]``) and
    its clip."""

    sample: Sample
    clip: Frames | None
