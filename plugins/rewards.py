"""The shared rewards (VITAL arXiv:2508.04416, DeepVideo-R1 arXiv:2506.07464, VerIPO arXiv:2505.19000;
docs/algorithms.md, 'Shared rewards — specification'): format, multiple choice, numeric, MRA,
temporal IoU (with DGRPO's (α, β) cut), grounded QA and free-form ROUGE. Each reads only the one
``<answer>`` block of a response (``vidrl.text``) and scores it in [0, 1] (grounded QA: [0, 2])."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import vidrl
from vidrl import text


class Format(vidrl.Reward):
    """``score`` when the response is exactly <think>…</think> [<tool_call>…</tool_call>
    <think>…</think>]* <answer>…</answer> with only white space between the blocks (the think
    blocks optional when ``think`` is off; tool blocks only when ``tool_calls`` is on), else 0.
    DeepVideo-R1 scores {0, 1}, VerIPO {0, 0.5}. VITAL's tool bonus: + ``tool_bonus`` per
    successful tool execution, at most ``max_bonus_calls``, read from the roll-out's stashed
    ``vidrl.ToolResults`` (``succeeded``), and only for a response whose format holds
    (calls inside a malformed response earn nothing)."""

    name = "format"

    @dataclass(frozen=True)
    class Config:
        score: float = 1.0
        think: bool = True
        tool_calls: bool = False
        tool_bonus: float = 0.0
        max_bonus_calls: int = 2

        def __post_init__(self) -> None:
            if self.tool_bonus < 0 or self.max_bonus_calls < 0:
                raise ValueError(f"tool_bonus and max_bonus_calls must be >= 0: {self}")

    def __init__(self, config=None):
        super().__init__(config)
        think = r"<think>(?:(?!</?think>|</?answer>).)*</think>\s*"
        head = think if self.config.think else f"(?:{think})?"
        tool = r"<tool_call>(?:(?!</?tool_call>).)*</tool_call>\s*" + head
        answer = r"<answer>(?:(?!</?answer>|</?think>).)*</answer>"
        loop = f"(?:{tool})*" if self.config.tool_calls else ""
        self._pattern = re.compile(rf"\s*{head}{loop}{answer}\s*", re.S)

    def __call__(self, responses: Sequence[str], samples: Sequence[vidrl.Sample]) -> list[float]:
        c = self.config
        out = []
        for r, s in zip(responses, samples, strict=True):
            if not self._pattern.fullmatch(r):
                out.append(0.0)
                continue
            results = s.extra(vidrl.ToolResults)
            succeeded = 0 if results is None else results.succeeded
            out.append(c.score + c.tool_bonus * min(succeeded, c.max_bonus_calls))
        return out


class MultipleChoice(vidrl.Reward):
    """1 when the answer names exactly one option letter and it is the right one."""

    name = "multiple_choice"
    task_types = frozenset({"multiple_choice"})

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            choice = text.parse_choice(text.extract_answer(r), len(s.options) or 4)
            out.append(1.0 if choice == s.answer.strip().upper() else 0.0)
        return out


def _numbers(response: str, sample: vidrl.Sample) -> tuple[float | None, float | None]:
    """(the number answered, the true number); None where either cannot be read."""
    return text.parse_number(text.extract_answer(response)), text.parse_number(sample.answer)


class Numeric(vidrl.Reward):
    """1 if the one number in the answer equals the truth at one decimal, 0.5 if equal once
    rounded to an integer, else 0."""

    name = "numeric"
    task_types = frozenset({"numeric"})

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            pred, gt = _numbers(r, s)
            if pred is None or gt is None:
                out.append(0.0)
            elif round(pred, 1) == round(gt, 1):
                out.append(1.0)
            else:
                out.append(0.5 if round(pred) == round(gt) else 0.0)
        return out


class MRA(vidrl.Reward):
    """Mean relative accuracy: mean over θ ∈ {0.50, 0.55, …, 0.95} of 1[|ŷ − y| / |y| ≤ 1 − θ]
    (for y = 0: 1 only for ŷ = 0)."""

    name = "mra"
    task_types = frozenset({"numeric"})
    THRESHOLDS = tuple(0.5 + 0.05 * i for i in range(10))

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            pred, gt = _numbers(r, s)
            if pred is None or gt is None:
                out.append(0.0)
            elif gt == 0:
                out.append(1.0 if pred == 0 else 0.0)
            else:
                rel = abs(pred - gt) / abs(gt)
                out.append(sum(rel <= 1 - t + 1e-12 for t in self.THRESHOLDS) / len(self.THRESHOLDS))
        return out


class TemporalIoU(vidrl.Reward):
    """IoU of the answer's span with the truth, cut as clamp((IoU − α) / (β − α), 0, 1)
    (DGRPO's task-level scaling; α = 0, β = 1 is plain IoU). Unparseable or reversed: 0.

    (α, β) per sample: ``by_source[sample.metadata["source"]]`` if given, else
    ``by_task[sample.task_type]``, else (``alpha``, ``beta``). VITAL uses (0.2, 0.8) for
    Charades-STA-like sources and (0.0, 0.5) for VidChapters."""

    name = "temporal_iou"
    task_types = frozenset({"temporal_grounding"})

    @dataclass(frozen=True)
    class Config:
        alpha: float = 0.0
        beta: float = 1.0
        by_task: dict[str, tuple[float, float]] = field(default_factory=dict)
        by_source: dict[str, tuple[float, float]] = field(default_factory=dict)

        def __post_init__(self) -> None:
            cuts = {"": (self.alpha, self.beta), **self.by_task, **self.by_source}
            bad = {k or "default": v for k, v in cuts.items() if not (len(v) == 2 and 0 <= v[0] < v[1] <= 1)}
            if bad:
                raise ValueError(f"need 0 <= alpha < beta <= 1 for every cut, got {bad}")
            unknown = sorted(set(self.by_task) - set(vidrl.TASK_TYPES))
            if unknown:
                raise ValueError(
                    f"by_task: unknown task types {unknown}; valid: {', '.join(vidrl.TASK_TYPES)}"
                )

    def cut(self, sample: vidrl.Sample) -> tuple[float, float]:
        c = self.config
        source = sample.metadata.get("source")
        if source in c.by_source:
            return c.by_source[source]
        return c.by_task.get(sample.task_type, (c.alpha, c.beta))

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            if s.span is None:
                raise ValueError(f"sample {s.id!r} has no ground-truth span")
            a, b = self.cut(s)
            iou = text.temporal_iou(text.parse_span(text.extract_answer(r)), s.span)
            out.append(min(1.0, max(0.0, (iou - a) / (b - a))))
        return out


class GroundedQA(vidrl.Reward):
    """IoU of the answer's span + 1 if the rest of the answer matches the truth (normalised):
    in [0, 2]. (The released VITAL code returns only the IoU part; that is a bug, not copied.)"""

    name = "grounded_qa"
    task_types = frozenset({"grounded_qa"})

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            if s.span is None:
                raise ValueError(f"sample {s.id!r} has no ground-truth span")
            answer = text.extract_answer(r)
            iou = text.temporal_iou(text.parse_span(answer), s.span)
            said = text.normalize(text.remove_span(answer)) if answer else ""
            out.append(iou + (1.0 if said == text.normalize(s.answer) else 0.0))
        return out


class Rouge(vidrl.Reward):
    """Free form: the mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures of the answer against
    the truth, by Google's ``rouge-score`` (the package the papers' numbers come from), with its
    Porter stemmer when ``stemmer`` is on (Video-R1's setting)."""

    name = "rouge"
    task_types = frozenset({"free_form"})

    @dataclass(frozen=True)
    class Config:
        stemmer: bool = True

    def __init__(self, config=None):
        super().__init__(config)
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(
            ["rouge1", "rouge2", "rougeL"], use_stemmer=self.config.stemmer
        )

    def __call__(self, responses, samples):
        out = []
        for r, s in zip(responses, samples, strict=True):
            scores = self._scorer.score(s.answer, text.extract_answer(r) or "")
            out.append(sum(x.fmeasure for x in scores.values()) / 3)
        return out


class Math(vidrl.Reward):
    """1 when the answer is mathematically equal to the truth, else 0, by Hugging Face's
    ``math-verify`` (LaTeX, fractions, roots, sets, units and percentages normalised; numbers
    compared to ``float_rounding`` decimals). The answer is the ``<answer>`` block, read as
    inline LaTeX, or as plain text when that gives nothing (likewise the truth). Needs the ``math``
    extra (``pip install 'vidrl[math]'``). Scored in the scorer's thread, so math-verify's own
    signal-based timeouts are off; the scorer's ``timeout`` bounds a call."""

    name = "math"

    @dataclass(frozen=True)
    class Config:
        float_rounding: int = 6

        def __post_init__(self) -> None:
            reason = Math.unavailable_reason()
            if reason:
                raise ValueError(reason)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import math_verify  # noqa: F401
        except ImportError:
            return "reward 'math' needs math-verify: pip install 'vidrl[math]'"
        return None

    def __init__(self, config=None):
        super().__init__(config)
        # math-verify warns on every call that its signal timeouts are off: the scorer's bound them
        logging.getLogger("math_verify").setLevel(logging.ERROR)

    def __call__(self, responses, samples):
        from math_verify import verify

        out = []
        for r, s in zip(responses, samples, strict=True):
            said = text.extract_answer(r)
            gold, pred = _parsed(s.answer), _parsed(said) if said else []
            ok = bool(gold and pred and verify(gold, pred, float_rounding=self.config.float_rounding,
                                               timeout_seconds=None))  # fmt: skip
            out.append(1.0 if ok else 0.0)
        return out


def _parsed(value: str) -> list:
    """math-verify's parse of ``$value$`` (inline LaTeX), or of ``value`` when that gives nothing."""
    from math_verify import parse

    return parse(f"${value}$", parsing_timeout=None) or parse(value, parsing_timeout=None)


@vidrl.hookimpl
def register_rewards(register):
    for cls in (Format, MultipleChoice, Numeric, MRA, TemporalIoU, GroundedQA, Rouge, Math):
        register(cls)
