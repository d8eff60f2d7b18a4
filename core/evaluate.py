"""Held-out evaluation: greedy answers of a model on a data set, judged per task type.

Accuracy: the answer block names the right option letter (multiple choice), the right number
(numeric), or the right text with the span removed (grounded QA, free form; normalised exact
match). mIoU: temporal IoU of the answered span (temporal grounding, grounded QA). An answer that
cannot be parsed counts as wrong (IoU 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vidrl import text
from vidrl.rollout import HFGenerate, Sampling, decode, rollout
from vidrl.types import Sample


def grade(response: str, sample: Sample) -> tuple[float | None, float | None]:
    """(correct 0/1 or None when the task has no accuracy, IoU or None when it has no span)."""
    answer = text.extract_answer(response)
    task = sample.task_type
    iou = text.temporal_iou(text.parse_span(answer), sample.span) if sample.span is not None else None
    if task == "temporal_grounding":
        return None, iou
    if task == "multiple_choice":
        ok = text.parse_choice(answer, len(sample.options) or 4) == sample.answer.strip().upper()
    elif task == "numeric":
        said, truth = text.parse_number(answer), text.parse_number(sample.answer)
        ok = said is not None and said == truth
    else:
        said = (
            text.normalize(text.remove_span(answer) if task == "grounded_qa" else answer) if answer else None
        )
        ok = said == text.normalize(sample.answer)
    return float(ok), iou


def summarize(judged: Iterable[tuple[Sample, float | None, float | None]]) -> dict[str, float]:
    """``accuracy`` and ``miou`` over all samples that have them, and ``accuracy/<task>``,
    ``miou/<task>`` per task type, plus ``n``."""
    acc: dict[str, list[float]] = defaultdict(list)
    iou: dict[str, list[float]] = defaultdict(list)
    n = 0
    for sample, ok, overlap in judged:
        n += 1
        if ok is not None:
            acc[sample.task_type].append(ok)
        if overlap is not None:
            iou[sample.task_type].append(overlap)
    out: dict[str, float] = {"n": float(n)}
    for name, table in (("accuracy", acc), ("miou", iou)):
        values = [v for vs in table.values() for v in vs]
        if values:
            out[name] = sum(values) / len(values)
            out.update({f"{name}/{task}": sum(vs) / len(vs) for task, vs in sorted(table.items())})
    return out


def evaluate(
    model: Any,
    tokenizer: Any,
    batches: Iterable[tuple[Sequence[Sample], Any]],
    eos_id: int,
    max_new_tokens: int = 32,
    on_batch: Callable[[list[str], Sequence[Sample]], None] | None = None,
    respond: Callable[[Sequence[Sample], Any], list[str]] | None = None,
) -> dict[str, float]:
    """Answer every (samples, processor batch) — greedy single-turn decoding, or
    ``respond(samples, batch)`` → texts (tool roll-outs) — and ``summarize`` the judgements."""
    if respond is None:
        backend = HFGenerate(model, eos_id, tokenizer.pad_token_id)
        greedy = Sampling(temperature=0.0, max_new_tokens=max_new_tokens)

        def respond(samples: Sequence[Sample], batch: Any) -> list[str]:
            return decode(tokenizer, rollout(backend, batch, 1, greedy, eos_id))

    judged = []
    for samples, batch in batches:
        texts = respond(samples, batch)
        if on_batch is not None:
            on_batch(texts, samples)
        judged += [(s, *grade(t, s)) for t, s in zip(texts, samples, strict=True)]
    return summarize(judged)
