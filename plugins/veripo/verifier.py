"""VerIPO's rollout-aware verifier (arXiv:2505.19000; docs/algorithms.md, 'VerIPO — specification'):
four checks per roll-out.

1. accuracy — graded against the ground truth as held-out evaluation grades it
   (``vidrl.grade``); a grounding answer is accurate when its IoU reaches ``iou_threshold``;
2. consistency — a ``vidrl.Judge`` decides whether the reasoning supports the final answer
   (no judge configured: the check is skipped, the verdict's ``consistent`` is None);
3. repetition — the share of repeated word n-grams, and the most times one sentence recurs;
4. length — response tokens within [min_tokens, max_tokens], and not cut off by the token budget.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import vidrl

_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_SENTENCE_END = re.compile(r"[.!?\n]+")
_TAG = re.compile(r"</?\w+>")


@dataclass(frozen=True)
class VerifierConfig:
    """Thresholds of the checks. ``max_ngram_repeat``: the most a response's word ``ngram`` s
    may be repeats (1 − distinct / total); ``max_sentence_repeats``: how often one sentence (of
    at least ``min_sentence_words`` words, normalised) may occur; ``min_tokens`` /
    ``max_tokens`` (None: no upper bound but the sampling budget); ``truncated_fails``: a
    response the token budget cut off fails the length check; ``iou_threshold``: the IoU at
    which a grounding answer counts as accurate."""

    ngram: int = 4
    max_ngram_repeat: float = 0.3
    max_sentence_repeats: int = 1
    min_sentence_words: int = 3
    min_tokens: int = 1
    max_tokens: int | None = None
    truncated_fails: bool = True
    iou_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.ngram < 1 or self.max_sentence_repeats < 1 or self.min_sentence_words < 1:
            raise ValueError(f"ngram, max_sentence_repeats, min_sentence_words must be >= 1: {self}")
        if not 0 <= self.max_ngram_repeat <= 1 or not 0 <= self.iou_threshold <= 1:
            raise ValueError(f"max_ngram_repeat and iou_threshold must lie in [0, 1]: {self}")
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError(f"max_tokens ({self.max_tokens}) < min_tokens ({self.min_tokens})")


@dataclass(frozen=True)
class Rollout:
    """One sampled response: the prompt's sample id, its group (the roll-outs of one prompt in
    one step share it), the text, its token count, and whether the budget cut it off."""

    prompt: str
    group: str
    text: str
    tokens: int
    truncated: bool


@dataclass(frozen=True)
class Verdict:
    """The four checks of one response (``consistent`` None: not judged), the judge's output
    and whether it was parseable."""

    accurate: bool
    consistent: bool | None
    repetitive: bool
    length_ok: bool
    tokens: int
    judge_output: str | None = None
    judge_parsed: bool | None = None

    @property
    def passes(self) -> bool:
        """Every check passed (a skipped consistency check does not fail)."""
        return self.accurate and self.consistent is not False and not self.repetitive and self.length_ok

    def failed(self) -> list[str]:
        """The names of the failed checks."""
        bad = {
            "accuracy": not self.accurate,
            "consistency": self.consistent is False,
            "repetition": self.repetitive,
            "length": not self.length_ok,
        }
        return [name for name, failed in bad.items() if failed]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "passes": self.passes, "failed": self.failed()}


def split_response(text: str) -> tuple[str, str]:
    """(reasoning, answer): the ``<think>`` block (else the text before ``<answer>``, tags
    removed) and the ``<answer>`` block ("" when there is none or several)."""
    think = _THINK.findall(text)
    reasoning = think[0] if len(think) == 1 else text.split("<answer>", 1)[0]
    return _TAG.sub(" ", reasoning).strip(), vidrl.text.extract_answer(text) or ""


def accurate(text: str, sample: vidrl.Sample, iou_threshold: float) -> bool:
    correct, iou = vidrl.grade(text, sample)
    return bool(correct) if correct is not None else iou is not None and iou >= iou_threshold


def repetition(text: str, ngram: int, min_sentence_words: int) -> tuple[float, int]:
    """(share of repeated word n-grams, the most times one sentence occurs) of ``text``."""
    words = _TAG.sub(" ", text).lower().split()
    grams = [tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]
    share = 1 - len(set(grams)) / len(grams) if grams else 0.0
    sentences = [vidrl.text.normalize(s) for s in _SENTENCE_END.split(_TAG.sub(" ", text))]
    counts = Counter(s for s in sentences if len(s.split()) >= min_sentence_words)
    return share, max(counts.values(), default=0)


def is_repetitive(text: str, c: VerifierConfig) -> bool:
    share, most = repetition(text, c.ngram, c.min_sentence_words)
    return share > c.max_ngram_repeat or most > c.max_sentence_repeats


def length_ok(tokens: int, truncated: bool, c: VerifierConfig) -> bool:
    within = tokens >= c.min_tokens and (c.max_tokens is None or tokens <= c.max_tokens)
    return within and not (truncated and c.truncated_fails)


def judge_item(text: str, sample: vidrl.Sample) -> vidrl.JudgeItem:
    """What the judge sees: the question (with lettered options), the reasoning, the answer."""
    question = sample.question
    if sample.options:
        question += " Options: " + " ".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(sample.options))
    return vidrl.JudgeItem(question, *split_response(text))


JudgeFn = Callable[[Sequence[vidrl.JudgeItem]], list[vidrl.Judgement]]


def verify(
    rollouts: Sequence[Rollout],
    samples: dict[str, vidrl.Sample],
    judge: JudgeFn | None,
    config: VerifierConfig,
) -> list[Verdict]:
    """One ``Verdict`` per roll-out; ``judge`` (batched over all of them) may be None."""
    rows = [(r, samples[r.prompt]) for r in rollouts]
    judged = judge([judge_item(r.text, s) for r, s in rows]) if judge is not None and rows else None
    out = []
    for i, (r, s) in enumerate(rows):
        j = judged[i] if judged is not None else None
        out.append(
            Verdict(
                accurate=accurate(r.text, s, config.iou_threshold),
                consistent=None if j is None else j.consistent,
                repetitive=is_repetitive(r.text, config),
                length_ok=length_ok(r.tokens, r.truncated, config),
                tokens=r.tokens,
                judge_output=None if j is None else j.output,
                judge_parsed=None if j is None else j.parsed,
            )
        )
    return out


def verdict_metrics(verdicts: Sequence[Verdict], judged: bool) -> dict[str, float]:
    """``veripo/pass/<check>`` rates (consistency only when judged), ``veripo/inconsistent_rate``,
    ``veripo/judge_unparseable`` (share of judge outputs that were neither word),
    ``veripo/judge_skipped`` and ``veripo/response_length``."""
    n = max(1, len(verdicts))
    out = {
        "veripo/rollouts": float(len(verdicts)),
        "veripo/pass/accuracy": sum(v.accurate for v in verdicts) / n,
        "veripo/pass/repetition": sum(not v.repetitive for v in verdicts) / n,
        "veripo/pass/length": sum(v.length_ok for v in verdicts) / n,
        "veripo/pass/all": sum(v.passes for v in verdicts) / n,
        "veripo/response_length": sum(v.tokens for v in verdicts) / n,
        "veripo/judge_skipped": float(not judged),
    }
    if judged:
        out["veripo/pass/consistency"] = sum(v.consistent is True for v in verdicts) / n
        out["veripo/inconsistent_rate"] = sum(v.consistent is False for v in verdicts) / n
        out["veripo/judge_unparseable"] = sum(v.judge_parsed is False for v in verdicts) / n
    return out
