"""Held-out evaluation: greedy answers of a model on a data set, judged per task type.

Accuracy: the answer block names the right option letter (multiple choice), the right number
(numeric), or the right text with the span removed (grounded QA, free form; normalised exact
match). mIoU: temporal IoU of the answered span (temporal grounding, grounded QA). An answer that
cannot be parsed counts as wrong (IoU 0).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from vidrl import text
from vidrl.data.video import VideoError
from vidrl.engine.feed import Clips
from vidrl.engine.rollout import decode, rollout
from vidrl.models.generate import HFGenerate
from vidrl.models.inputs import FITTED_FRAMES, FITTED_IMAGES, Geometry, prepare_batch, sample_images
from vidrl.models.sharding import gathered
from vidrl.plugin.components import RolloutBackend
from vidrl.tools.report import tool_metrics
from vidrl.types import Sample, Sampling

if TYPE_CHECKING:
    from vidrl.config import RunConfig
    from vidrl.engine.context import RunContext

log = logging.getLogger(__name__)


#: how an answer is read: the ``<answer>`` block (as trained), the whole reply (a prompt written the
#: benchmark way: the option letter, the number, the span or the text), or the block when there is one
GRADINGS = ("answer_tag", "plain", "auto")


def grade(response: str, sample: Sample, grading: str = "answer_tag") -> tuple[float | None, float | None]:
    """(correct 0/1 or None when the task has no accuracy, IoU or None when it has no span), the
    answer read as ``grading`` says (``GRADINGS``)."""
    if grading not in GRADINGS:
        raise ValueError(f"unknown grading {grading!r}; valid: {', '.join(GRADINGS)}")
    answer = text.extract_answer(response) if grading != "plain" else None
    plain = answer is None and grading != "answer_tag"
    answer = response if plain else answer
    task = sample.task_type
    iou = text.temporal_iou(text.parse_span(answer), sample.span) if sample.span is not None else None
    if task == "temporal_grounding":
        return None, iou
    if task == "multiple_choice":
        read = text.parse_letter if plain else text.parse_choice
        ok = read(answer, len(sample.options) or 4) == sample.answer.strip().upper()
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
    """``accuracy`` and ``miou`` over all samples that have them, ``accuracy/<task>``,
    ``miou/<task>`` per task type and, for samples whose metadata names a benchmark ``category``
    (e.g. Video-MME's task types), ``accuracy/category/<category>``; plus ``n``."""
    acc: dict[str, list[float]] = defaultdict(list)
    iou: dict[str, list[float]] = defaultdict(list)
    n = 0
    for sample, ok, overlap in judged:
        n += 1
        groups = [sample.task_type]
        if "category" in sample.metadata:
            groups.append(f"category/{sample.metadata['category']}")
        for group in groups:
            if ok is not None:
                acc[group].append(ok)
            if overlap is not None:
                iou[group].append(overlap)
    out: dict[str, float] = {"n": float(n)}
    for name, table in (("accuracy", acc), ("miou", iou)):
        values = [v for task, vs in table.items() if not task.startswith("category/") for v in vs]
        if values:
            out[name] = sum(values) / len(values)
            out.update({f"{name}/{task}": sum(vs) / len(vs) for task, vs in sorted(table.items())})
    return out


def evaluate(
    model: RolloutBackend | Any,
    tokenizer: Any,
    batches: Iterable[tuple[Sequence[Sample], Any]],
    eos_id: int,
    max_new_tokens: int = 32,
    on_batch: Callable[[list[str], Sequence[Sample]], None] | None = None,
    respond: Callable[[Sequence[Sample], Any], list[str]] | None = None,
    grading: str = "answer_tag",
) -> dict[str, float]:
    """Answer every (samples, processor batch) — greedy single-turn decoding by ``model`` (a
    roll-out backend, or a model sampled with ``hf_generate``), or ``respond(samples, batch)`` →
    texts (tool roll-outs) — and ``summarize`` the judgements (answers read as ``grading``)."""
    if respond is None:
        backend = model if isinstance(model, RolloutBackend) else HFGenerate().attach(model)
        greedy = Sampling(temperature=0.0, max_new_tokens=max_new_tokens)

        def respond(samples: Sequence[Sample], batch: Any) -> list[str]:
            return decode(tokenizer, rollout(backend, batch, 1, greedy, eos_id, tokenizer.pad_token_id))

    judged = []
    for samples, batch in batches:
        texts = respond(samples, batch)
        if on_batch is not None:
            on_batch(texts, samples)
        judged += [(s, *grade(t, s, grading)) for t, s in zip(texts, samples, strict=True)]
    return summarize(judged)


def has_eval(config: RunConfig) -> bool:
    """Whether the run has a held-out set: ``data.eval``, or the synthetic one when no data set is given."""
    d = config.data
    return d.eval is not None or (d.train is None and d.synth.eval_videos > 0)


def eval_batches(
    ctx: RunContext, split: str = "eval", skipped: list[dict[str, str]] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[list[Any], Any]]:  # fmt: skip
    """The data set in order, in batches of ``eval.batch_size`` (first ``eval.max_samples``; with
    ``shard`` = (k, n), the k-th of n contiguous shares of those rows); undecodable videos raise,
    or with ``data.on_bad_row: skip`` are left out, each logged and appended to ``skipped`` as
    ``{"sample": id, "skipped": reason}``."""
    c, ds = ctx.config, ctx.dataset(split)
    processor = ctx.policy().processor
    clips = Clips(ds, ctx.video_backend, c.data)
    geometry = Geometry.of(processor)
    n = len(ds) if c.eval.max_samples is None else min(len(ds), c.eval.max_samples)
    share = -(-n // shard[1])
    start, stop = min(n, shard[0] * share), min(n, (shard[0] + 1) * share)
    for i in range(start, stop, c.eval.batch_size):
        samples, frames = [], []
        for sample in ds.samples[i : min(stop, i + c.eval.batch_size)]:
            try:
                sample, clip = clips.load(sample, geometry)
                frames.append(clip)
            except VideoError as e:
                if c.data.on_bad_row != "skip":
                    raise
                log.warning("evaluation leaves out a sample whose video does not decode: %s", e)
                if skipped is not None:
                    skipped.append({"sample": sample.id, "skipped": str(e)})
                continue
            samples.append(sample)
        if samples:
            batch, fitted = prepare_batch(processor, samples, frames, c.data.budget, ctx.system_prompt())
            batch = batch.to(ctx.accelerator.device)
            batch[FITTED_FRAMES] = fitted
            batch[FITTED_IMAGES] = [sample_images(s) for s in samples]
            yield samples, batch


def tool_responder(ctx: RunContext, calls: list[list[dict]], split: str = "eval") -> Any:
    """``respond(samples, batch)`` for ``evaluate``: greedy tool roll-outs with the run's tools
    within the run's ``turns`` budgets, each answer's calls appended to ``calls``; None without tools."""
    runner = ctx.tool_runner(split)
    if runner is None:
        return None
    limits = ctx.config.turns.limits
    greedy = Sampling(temperature=0.0, max_new_tokens=limits.max_turn_tokens)

    def respond(samples: Any, batch: Any) -> list[str]:
        _, convs = runner.rollout(batch, samples, 1, greedy, limits)
        calls.extend(conv.calls for conv in convs)
        return [conv.text for conv in convs]

    return respond


def score_split(ctx: RunContext, split: str = "eval") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy answers of the policy on ``split`` (tool roll-outs when the run lists tools), each
    process answering a contiguous share of the rows, gathered on every process: (scores —
    accuracy / mIoU per task, ``skipped`` (rows whose video did not decode, left out of ``n``),
    with tools ``tools/calls`` and ``tools/success`` —, every answer in data-set order: sample,
    response, ``correct``, ``iou``, with tools its ``calls``; then each left-out row with its
    reason). Every process must call it."""
    p, calls, judged, answers, skipped = ctx.policy(), [], [], [], []
    respond = tool_responder(ctx, calls, split)
    grading = ctx.config.eval.grading

    def keep(texts: list[str], samples: Any) -> None:
        for k, (t, s) in enumerate(zip(texts, samples, strict=True)):
            ok, iou = grade(t, s, grading)
            judged.append((_light(s), ok, iou))
            row = {"sample": s.id, "answer": s.answer, "response": t, "correct": ok, "iou": iou}
            answers.append(row if respond is None else {**row, "calls": calls[len(calls) - len(texts) + k]})

    shard = (ctx.accelerator.process_index, ctx.accelerator.num_processes)
    batches = eval_batches(ctx, split, skipped, shard)
    evaluate(ctx.rollout_backend(sync=False), p.tokenizer, batches, p.eos_id, ctx.config.eval.max_new_tokens,
             on_batch=keep, respond=respond, grading=grading)  # fmt: skip
    parts = ctx.world.gather((judged, answers, skipped, calls))
    judged, answers, skipped, calls = ([x for part in parts for x in part[k]] for k in range(4))
    result = summarize(judged)
    if respond is not None:
        result.update(tool_metrics(calls))
    result["skipped"] = float(len(skipped))
    return result, answers + skipped


def _light(sample: Sample) -> Sample:
    """What ``summarize`` reads of a sample (its task type and category), without its media, so
    that gathering the judgements from every process sends no pixels."""
    category = {"category": sample.metadata["category"]} if "category" in sample.metadata else {}
    return Sample(sample.id, "", "", sample.task_type, metadata=category)


def evaluate_split(ctx: RunContext, label: str) -> dict[str, float] | None:
    """``score_split`` on ``data.eval``, every process answering its share (no rank waits for the
    whole evaluation), logged by the main process as ``eval/<metric>`` at the current step and
    written to ``eval-<label>.json``, every answer to ``eval-<label>-answers.jsonl``."""
    if not has_eval(ctx.config):
        return None
    ctx.rollout_backend()  # created and synced with the weights on every rank
    with gathered(ctx.policy().model):  # a sharded model: whole on every rank meanwhile
        result, answers = score_split(ctx)
    if ctx.is_main:
        ctx.log.metrics.write(
            {"step": ctx.state.global_step, "eval": label, **{f"eval/{k}": v for k, v in result.items()}}
        )
        (ctx.run_dir / f"eval-{label}.json").write_text(json.dumps(result, indent=2) + "\n")
        lines = "".join(json.dumps(a) + "\n" for a in answers)
        (ctx.run_dir / f"eval-{label}-answers.jsonl").write_text(lines)
    return result
