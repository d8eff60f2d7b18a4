"""The plugin-facing contract: every piece of data the engine hands a component or a hook, and
every piece a component hands back, documented field by field (``docs/contract.md`` is the guided
tour). Shapes: P prompts, G roll-outs each, B = P·G roll-outs, T response tokens, F frames.

Contracts grow by adding fields with defaults, so components written against an older version
keep working. Per-sample extras that the engine or a plugin attaches to a ``Sample`` are typed
values in its stash (``Sample.extra`` / ``Sample.with_extra``), never loose string keys.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

TASK_TYPES = ("multiple_choice", "numeric", "temporal_grounding", "grounded_qa", "free_form")

E = TypeVar("E")

# -- samples ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One prompt of a data set.

    ``id``: unique within the data set. ``question``: the prompt text. ``answer``: the reference
    answer (an option letter, a number, "start-end" seconds, or text). ``task_type``: one of
    ``TASK_TYPES``. ``video``: a path under the data set's root, or None. ``images``: image paths
    (the model sees them before the video, in this order). ``options``: the choices of a multiple-choice
    question. ``span``: the ground-truth (start, end) in seconds of grounding tasks. ``duration``:
    the video's length in seconds, when known. ``metadata``: the data-set row's other columns as
    read (e.g. ``source``, ``response``, ``chosen``/``rejected``). ``extras``: the typed stash
    (type → value) that the engine and plugins attach during a run; read it with ``extra``.
    ``segment``: the part of the video the prompt is about, (start, end) seconds, or None for the
    whole video; only its frames are shown (times stay the video's own).
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
    extras: Mapping[type, Any] = field(default_factory=dict)
    segment: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(
                f"Sample {self.id!r}: unknown task_type {self.task_type!r}; valid: {', '.join(TASK_TYPES)}"
            )

    def extra(self, kind: type[E]) -> E | None:
        """The stashed value of type ``kind`` (e.g. ``sample.extra(vidrl.ToolResults)``), or None."""
        return self.extras.get(kind)

    def with_extra(self, value: Any) -> Sample:
        """A copy with ``value`` stashed under its type (replacing an earlier one of that type)."""
        from dataclasses import replace

        return replace(self, extras={**self.extras, type(value): value})


@dataclass(frozen=True)
class ToolResults:
    """Stashed on each roll-out's sample of a tool roll-out (for rewards such as the format tool
    bonus): ``calls`` made and how many ``succeeded``."""

    calls: int
    succeeded: int


@dataclass(frozen=True)
class Augmentation:
    """Stashed on a sample an augmenter replaced: ``by`` (the augmenter's name) and ``record``
    (plain values saying what was done, e.g. the hint or the noise level)."""

    by: str
    record: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImagePixels:
    """Stashed on a sample with ``images`` by the engine's feeds: ``pixels``, one [H, W, 3] uint8
    tensor per image, in the order of ``Sample.images``, resized on the processor's patch grid
    within the pixel budget (what ``vidrl.models.inputs.prepare_batch`` hands the processor)."""

    pixels: tuple[torch.Tensor, ...]


# -- video ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a backend reads from a file's header: ``num_frames``, ``fps``, ``width`` and
    ``height`` in pixels; ``duration`` (s) follows."""

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
    frame's presentation time, index / fps); ``indices``: [F] long frame indices in the file;
    ``info``: the file's ``VideoInfo``."""

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


# -- roll-outs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Sampling options of a roll-out: ``temperature`` (0 decodes greedily), ``top_p`` and
    ``max_new_tokens``."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1; got {self}")


@dataclass(frozen=True)
class RolloutRequest:
    """What a roll-out backend is asked for: ``group_size`` (G) responses to each of P prompts.

    ``batch``: the P prompts as the model's processor prepared them, not repeated: ``input_ids``
    [P, L] long, left-padded; ``attention_mask`` [P, L], 0 on the padding; and the vision inputs
    the model takes (for Qwen-VL ``pixel_values_videos`` [N, D], the flattened patches of every
    clip in prompt order, ``video_grid_thw`` [C, 3], ``mm_token_type_ids`` [P, L], ...).
    ``group_size``: G ≥ 1. ``sampling``: temperature (0: greedy), top-p, the most new tokens.
    ``stop_ids``: the tokens that end a response (the end-of-turn token; for a tool roll-out also
    the end of a call); the stop token stays in the response. ``pad_id``: what pads a response
    after its stop. ``frames``: per prompt, the frames of its clip as fitted to the pixel budget
    (exactly what the processor patchified: [F, H, W, 3] uint8 in ``Frames.pixels``), None for a
    prompt without video; None altogether when the caller has only the patchified batch (the
    later turns of a tool roll-out). ``images``: likewise, per prompt, its images as fitted
    ([H, W, 3] uint8 each, in order; empty for a prompt without), or None."""

    batch: Mapping[str, Any]
    group_size: int
    sampling: Sampling
    stop_ids: tuple[int, ...]
    pad_id: int
    frames: Sequence[Frames | None] | None = None
    images: Sequence[Sequence[torch.Tensor]] | None = None

    def __post_init__(self) -> None:
        if self.group_size < 1 or not self.stop_ids:
            raise ValueError(f"need group_size >= 1 and a stop id; got {self.group_size}, {self.stop_ids}")
        for name in ("frames", "images"):
            given = getattr(self, name)
            if given is not None and len(given) != self.num_prompts:
                raise ValueError(f"{len(given)} {name} entries for {self.num_prompts} prompts")

    @property
    def num_prompts(self) -> int:
        return int(self.batch["input_ids"].shape[0])

    def prompt_ids(self) -> list[list[int]]:
        """The rendered prompt of each prompt as token ids, without padding (what a serving
        engine takes, with ``frames``): P lists."""
        ids, keep = self.batch["input_ids"], self.batch["attention_mask"].bool()
        return [row[k].tolist() for row, k in zip(ids, keep, strict=True)]


@dataclass(frozen=True)
class Generation:
    """``prompt``: the repeated prompt batch (input_ids [B, L] and vision inputs);
    ``response_ids`` [B, T]; ``response_mask`` [B, T], 1 on the tokens the policy produced (up to
    and including the end-of-turn token), 0 after them.

    A multi-turn (tool) roll-out's response also holds tool observations, vision tokens
    included: then ``response_attention`` [B, T] is 1 on every real token (observations too, which
    the mask leaves out of the loss), ``response_types`` [B, T] their ``mm_token_type_ids``, and
    ``clip_rows`` [C] the row of each clip in the prompt's vision inputs (a row may own several:
    its prompt's video, then each observation's, in order).

    ``group_size``: G when rows p·G … p·G + G − 1 repeat prompt p (a roll-out's groups: the
    shared-prefix forward computes such a prompt once), 1 when no rows are known to share one."""

    prompt: dict[str, Any]
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    response_attention: torch.Tensor | None = None
    response_types: torch.Tensor | None = None
    clip_rows: torch.Tensor | None = None
    group_size: int = 1


@dataclass(frozen=True)
class Scores:
    """The rewards of B roll-outs. ``total``: [B] float, Σ weight · score over the rewards that
    scored each sample (0 when none did). ``per_reward``: reward name → [B] float, NaN where the
    reward does not apply to the sample (another task type's reward) or returned None for it."""

    total: torch.Tensor
    per_reward: dict[str, torch.Tensor]

    @property
    def scored(self) -> torch.Tensor:
        """[B] bool: some reward scored the sample (every row when there are no per-reward columns)."""
        cols = [~torch.isnan(s) for s in self.per_reward.values()]
        return torch.stack(cols).any(0) if cols else torch.ones_like(self.total, dtype=torch.bool)

    def for_estimator(self) -> torch.Tensor:
        """[B] the total, NaN where no reward scored the sample: an advantage estimator leaves
        those out of their group's statistics and gives them advantage 0."""
        return torch.where(self.scored, self.total, torch.full_like(self.total, math.nan))

    def means(self) -> dict[str, float]:
        """``reward/<name>``: mean over the samples each reward applies to (NaN-free)."""
        out = {}
        for name, s in self.per_reward.items():
            ok = ~torch.isnan(s)
            if ok.any():
                out[f"reward/{name}"] = float(s[ok].mean())
        return out


@dataclass(frozen=True)
class RolloutBatch:
    """What ``on_rollouts_scored`` sees: the B roll-outs a step trains on (after augmentation),
    scored, before advantages. ``texts`` [B]: the policy's responses (its own turns only, for
    tool roll-outs). ``samples`` [B]: each roll-out's prompt (a prompt's sample repeated G times,
    carrying its stash, e.g. ``ToolResults``). ``scores``: ``Scores`` of the B roll-outs.
    ``group_ids`` [B] long: roll-outs of one prompt share an id (G consecutive rows).
    ``group_size``: G. ``response_ids`` [B, T] and ``response_mask`` [B, T]: the tokens and the
    policy's own tokens among them. ``truncated`` [B] bool: the response ended without an
    end-of-turn token (cut off at the token budget)."""

    texts: Sequence[str]
    samples: Sequence[Sample]
    scores: Scores
    group_ids: torch.Tensor
    group_size: int
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    truncated: torch.Tensor

    #: the keys of the dict ``on_rollouts_scored`` received before this class (deprecated access)
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("texts", "samples", "scores", "group_ids")

    def __getitem__(self, key: str) -> Any:
        """Deprecated: the hook received a dict with keys texts, samples, scores, group_ids."""
        if key not in self.LEGACY_KEYS:
            raise KeyError(key)
        warnings.warn(
            f"batch[{key!r}] is deprecated: on_rollouts_scored receives a vidrl.RolloutBatch; "
            f"use batch.{key}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated, as ``batch[key]``."""
        return self[key] if key in self.LEGACY_KEYS else default

    def keys(self) -> tuple[str, ...]:
        """Deprecated: the legacy dict's keys (so ``dict(batch)`` and ``**batch`` still work)."""
        return self.LEGACY_KEYS

    def __contains__(self, key: object) -> bool:
        return key in self.LEGACY_KEYS


@dataclass
class TrainState:
    """Where training is, as hooks and stages see it (the engine updates it; read, do not write).
    ``stage_index``: the stage's index in ``stages``; ``stage``: its name (``<name>/<phase>`` inside
    a loop stage's phase); ``step``: steps done in the stage (in the current phase, for a loop
    stage); ``global_step``: steps done in the whole run; ``run_dir``: the run directory;
    ``rank`` and ``world_size``: this process among the data-parallel ones; ``phase``: the index of
    the current phase of a loop stage (0 for a plain stage)."""

    stage_index: int
    stage: str
    step: int
    global_step: int
    run_dir: Path
    rank: int = 0
    world_size: int = 1
    phase: int = 0


# -- component inputs and outputs -------------------------------------------------------------


@dataclass(frozen=True)
class Advantages:
    """What an advantage estimator returns (the engine checks it).

    ``advantages``: [B] (one per rollout) or [B, T] (per token), finite floats.
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
    """Everything a policy loss sees for one micro-batch of b roll-outs.

    ``logprobs``: [b, T] log π_θ of the response tokens (with grad). ``advantages``: [b] or [b, T].
    ``mask``: [b, T], 1 on trained tokens and 0 on padding and tool observations. ``group_ids``:
    [b] long. ``step_tokens`` and ``step_sequences``: the mask's token count and the sequence
    count of the *whole optimizer step* (every micro-batch, every rank), computed before the
    micro-batch loop, so that gradient accumulation and data parallelism do not change the loss
    (``vidrl.ops.aggregate``). ``step_micro_batches``: how many micro-batches the optimizer step
    has, over all ranks (for a per-micro-batch normaliser, TRL's ``bnpo``). ``old_logprobs``:
    [b, T] under the roll-out policy, only when the
    loss declares ``Need.OLD_LOGPROBS`` (else None); with ``num_iterations`` 1, ``logprobs``
    detached (the policy has not moved yet; the same storage: read it, never change it in
    place). ``ref_logprobs``: [b, T] under the reference model, only when the loss declares
    ``Need.REFERENCE_MODEL`` (else None). ``entropies``: [b, T], each response token's entropy of
    π_θ(· | prefix) at the sampling temperature, detached, from the same forward as ``logprobs``,
    only when the loss declares ``Need.ENTROPY`` (else None).
    """

    logprobs: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    group_ids: torch.Tensor
    step_tokens: float
    step_sequences: float
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    step_micro_batches: int = 1
    entropies: torch.Tensor | None = None


@dataclass(frozen=True)
class LossOutput:
    """What a policy loss returns (the engine checks it): ``loss``, a finite scalar tensor to
    backpropagate, and ``metrics``, floats to log (e.g. ``{"kl": 0.01}``), weighted by each
    micro-batch's share of the step's rows."""

    loss: torch.Tensor
    metrics: Mapping[str, float] = field(default_factory=dict)


Regenerate = Callable[[Sequence[Sample], Sequence[Frames | None]], tuple[list[list[str]], list[list[float]]]]


@dataclass(frozen=True)
class AugmentInput:
    """What an augmenter sees after the first roll-out of P prompts, each list indexed by prompt
    p: ``samples`` [P]; ``clips`` [P] (decoded frames or None); ``group_means`` [P] (mean total
    reward of each prompt's G roll-outs); ``texts`` [P][G] and ``rewards`` [P][G] (the roll-outs
    and their total rewards); ``regenerate`` (samples, clips) → (texts [n][G], rewards [n][G]):
    rolls out G responses for other prompts with the current policy (e.g. ground-truth-conditioned
    prompts, for hints)."""

    samples: list[Sample]
    clips: list[Frames | None]
    group_means: list[float]
    texts: list[list[str]]
    rewards: list[list[float]]
    regenerate: Regenerate


@dataclass(frozen=True)
class Augmented:
    """A replacement prompt an augmenter returns: the ``sample`` (the engine stashes an
    ``Augmentation`` on it, if the augmenter did not) and its ``clip`` (frames or None)."""

    sample: Sample
    clip: Frames | None


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


# -- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A parsed call: the tool's ``name`` and its ``arguments`` (a JSON object)."""

    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class ToolContext:
    """What a tool may look at: the prompt's ``sample``, its video's absolute ``video_path``
    (None without one), the ``backend`` (a ``vidrl.VideoBackend``) that decodes it, and the
    video's ``duration`` (s)."""

    sample: Sample
    video_path: str | None
    backend: Any
    duration: float | None


@dataclass(frozen=True)
class Observation:
    """A tool's result: ``text`` for the model, optional ``frames`` (a video input), ``ok``
    (False: an error the model should see), and ``info`` for logs (plain values)."""

    text: str
    frames: Frames | None = None
    ok: bool = True
    info: Mapping[str, Any] = field(default_factory=dict)
