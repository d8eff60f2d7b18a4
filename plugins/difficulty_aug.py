"""Difficulty-aware data augmentation (DeepVideo-R1, arXiv:2506.07464; docs/algorithms.md,
'Difficulty-aware augmentation — specification') as the augmenter ``difficulty_aug``.

After a step's first roll-out, each prompt's difficulty is Δ = (mean of the last ``window``
group-mean rewards) − (its own group-mean reward). Outside a dead band around 0 (or for a group
whose rewards are all equal, with ``degenerate``), a harder prompt (Δ > 0) gets a **hint**: the
policy answers the question with the ground truth given, the best-rewarded trace is kept, and its
first min(l·k, n − 1) reasoning steps (l = round(|Δ|) + 1, k = ``steps_per_level``, n steps) are
added to the question — never the answer line, and never a step that states the answer. An easier
prompt (Δ < 0) gets Gaussian **noise** on its frames, σ = ``sigma`` · (|Δ| + 1) in [0, 1] pixel
units capped at ``max_sigma`` and clamped to the pixel range, or **masking** of a share
``mask_fraction`` · (|Δ| + 1) of its frames (capped; never all). The buffer is pushed after each
step and saved in checkpoints.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

import torch

import vidrl

STEP_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


class ReplayBuffer:
    """The last ``window`` group-mean rewards."""

    def __init__(self, window: int):
        self.values: deque[float] = deque(maxlen=window)

    def push(self, values: list[float]) -> None:
        self.values.extend(float(v) for v in values)

    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


def reasoning_steps(trace: str) -> list[str]:
    """The reasoning of a response as steps (sentences or lines): the ``<think>`` block if there
    is one, else the text before ``<answer>``; answer and tool blocks removed."""
    m = re.search(r"<think>(.*?)</think>", trace, re.S)
    body = m.group(1) if m else trace.split("<answer>")[0]
    body = re.sub(r"<(answer|tool_call)>.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"</?(think|answer|tool_call)>", " ", body)
    return [s.strip() for s in STEP_SPLIT.split(body) if s.strip()]


def leaks(step: str, sample: vidrl.Sample) -> bool:
    """Whether a step states the answer: the answer (or, for multiple choice, the right option's
    text) as a whole word or phrase, case-insensitive."""
    needles = [sample.answer.strip()]
    if sample.options and len(sample.answer.strip()) == 1 and sample.answer.strip().upper() in "ABCDEFGH":
        needles.append(sample.options["ABCDEFGH".index(sample.answer.strip().upper())])
    low = step.lower()
    return any(n and re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", low) for n in needles)


def hint_prefix(trace: str, sample: vidrl.Sample, level: int, steps_per_level: int) -> str | None:
    """Of the first min(level · steps_per_level, n − 1) steps of the trace's reasoning (n steps:
    never all of them), those that do not state the answer; None when none is left."""
    steps = reasoning_steps(trace)
    shown = [s for s in steps[: min(level * steps_per_level, len(steps) - 1)] if not leaks(s, sample)]
    return " ".join(shown) if shown else None


def add_noise(frames: vidrl.Frames, sigma: float) -> vidrl.Frames:
    """Gaussian noise of std ``sigma`` (in [0, 1] pixel units) on uint8 frames, clamped to 0..255."""
    noisy = frames.pixels.float() + torch.randn(frames.pixels.shape) * (sigma * 255.0)
    return replace(frames, pixels=noisy.round().clamp(0, 255).to(torch.uint8))


def mask_frames(frames: vidrl.Frames, fraction: float) -> vidrl.Frames:
    """Black out a random ``fraction`` of the frames (at least one, never all)."""
    n = frames.pixels.shape[0]
    k = min(n - 1, max(1, round(fraction * n)))
    pixels = frames.pixels.clone()
    pixels[torch.randperm(n)[:k]] = 0
    return replace(frames, pixels=pixels)


class DifficultyAug(vidrl.Augmenter):
    """Hints for harder prompts, frame noise or masking for easier ones (see the module text).
    Metrics: ``difficulty_aug/hints``, ``hint_failed``, ``noise``, ``mask``, ``delta_mean``."""

    name = "difficulty_aug"

    @dataclass(frozen=True)
    class Config:
        window: int = 100
        dead_band: float = 0.1
        degenerate: bool = True
        hints: bool = True
        steps_per_level: int = 1
        easy: Literal["noise", "mask", "none"] = "noise"
        sigma: float = 0.05
        max_sigma: float = 0.5
        mask_fraction: float = 0.15
        max_mask_fraction: float = 0.75
        truth_template: str = "\n(The correct answer is {answer}. Reason step by step towards it.)"
        hint_template: str = "\nHint: {hint}"

        def __post_init__(self) -> None:
            if self.window < 1 or self.dead_band < 0 or self.steps_per_level < 1:
                raise ValueError(f"need window >= 1, dead_band >= 0, steps_per_level >= 1; got {self}")
            if not (
                0 <= self.sigma <= self.max_sigma <= 1
                and 0 <= self.mask_fraction <= self.max_mask_fraction < 1
            ):
                raise ValueError(
                    "need 0 <= sigma <= max_sigma <= 1 and 0 <= mask_fraction <= max_mask_fraction < 1; "
                    f"got {self}"
                )
            if "{hint}" not in self.hint_template or "{answer}" not in self.truth_template:
                raise ValueError("hint_template needs {hint} and truth_template needs {answer}")

    def __init__(self, config=None):
        super().__init__(config)
        self.buffer = ReplayBuffer(self.config.window)
        self._metrics: dict[str, float] = {}

    def __call__(self, batch: vidrl.AugmentInput) -> dict[int, vidrl.Augmented]:
        c, ref = self.config, self.buffer.mean()
        counts = dict.fromkeys(("hints", "hint_failed", "noise", "mask"), 0.0)
        self._metrics = {f"{self.name}/{k}": v for k, v in counts.items()}
        if ref is None:  # nothing to compare with yet
            return {}
        deltas = [ref - m for m in batch.group_means]
        chosen = [p for p, d in enumerate(deltas) if abs(d) >= c.dead_band
                  or (c.degenerate and max(batch.rewards[p]) == min(batch.rewards[p]))]  # fmt: skip
        hard = [p for p in chosen if deltas[p] >= 0 and c.hints]
        out = self._hints(batch, hard, deltas, counts)
        for p in (p for p in chosen if deltas[p] < 0 and batch.clips[p] is not None and c.easy != "none"):
            out[p] = self._perturb(batch.samples[p], batch.clips[p], abs(deltas[p]))
            counts[c.easy] += 1
        self._metrics = {f"{self.name}/{k}": v for k, v in counts.items()}
        self._metrics[f"{self.name}/delta_mean"] = sum(deltas) / len(deltas)
        return out

    def _hints(self, batch, hard, deltas, counts) -> dict[int, vidrl.Augmented]:
        if not hard:
            return {}
        c = self.config
        told = [replace(batch.samples[p], question=batch.samples[p].question
                        + c.truth_template.format(answer=batch.samples[p].answer)) for p in hard]  # fmt: skip
        texts, rewards = batch.regenerate(told, [batch.clips[p] for p in hard])
        out = {}
        for p, ts, rs in zip(hard, texts, rewards, strict=True):
            level = round(abs(deltas[p])) + 1
            hint = hint_prefix(
                ts[max(range(len(rs)), key=rs.__getitem__)], batch.samples[p], level, c.steps_per_level
            )
            if hint is None:
                counts["hint_failed"] += 1
                continue
            s = batch.samples[p]
            record = {"kind": "hint", "delta": deltas[p], "level": level, "hint": hint}
            question = s.question + c.hint_template.format(hint=hint)
            hinted = replace(s, question=question).with_extra(vidrl.Augmentation(self.name, record))
            out[p] = vidrl.Augmented(hinted, batch.clips[p])
            counts["hints"] += 1
        return out

    def _perturb(self, sample: vidrl.Sample, clip: vidrl.Frames, delta: float) -> vidrl.Augmented:
        c = self.config
        if c.easy == "noise":
            amount = min(c.max_sigma, c.sigma * (delta + 1))
            clip = add_noise(clip, amount)
        else:
            amount = min(c.max_mask_fraction, c.mask_fraction * (delta + 1))
            clip = mask_frames(clip, amount)
        record = {"kind": c.easy, "delta": -delta, "amount": amount}
        return vidrl.Augmented(sample.with_extra(vidrl.Augmentation(self.name, record)), clip)

    def observe(self, samples, group_means) -> None:
        self.buffer.push(list(group_means))

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def state_dict(self) -> dict:
        return {"buffer": list(self.buffer.values)}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = ReplayBuffer(self.config.window)
        self.buffer.push(state["buffer"])


@vidrl.hookimpl
def register_augmenters(register):
    register(DifficultyAug)
