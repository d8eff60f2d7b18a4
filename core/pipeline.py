"""``train``: a whole run — check every stage, evaluate before, run the stages in order (resuming
where a checkpoint says), save the final model, evaluate after, plot. ``evaluate_split``: held-out
accuracy / mIoU of the current policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidrl.config import RunConfig
from vidrl.errors import ConfigError
from vidrl.evaluate import evaluate, grade
from vidrl.feed import Clips
from vidrl.inputs import prepare_batch
from vidrl.multiturn import TurnLimits
from vidrl.report import plot
from vidrl.rollout import Sampling
from vidrl.run import RunContext, write_config
from vidrl.session import Session
from vidrl.video import VideoError


def train(config: RunConfig, session: Session, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Run ``config.stages`` in ``run_dir``; returns {"run_dir", "before", "after" (evaluations,
    None when not run or not the main process), "is_main"}. With ``resume``, continue from the
    newest checkpoint in ``run_dir``. Every process of a data-parallel run calls this."""
    stages = [session.create("stage", s.name, s.options) for s in config.stages]
    if not stages:
        raise ConfigError(["stages: a run needs at least one stage (e.g. sft, rl)"])
    errors = [f"stages.{i} ({s.name}): {e}" for i, s in enumerate(stages) for e in s.check(config)]
    if errors:
        raise ConfigError(errors)
    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise ConfigError([f"output_dir: {run_dir} already holds a run; pass --resume to continue it "
                           "or choose another directory"])  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(config, session, run_dir, resume)
    ctx.policy()  # collective set-up (model building, DDP wrapping, data synthesis) on every rank first
    ctx.dataset("train")
    if has_eval(config):
        ctx.dataset("eval")
    if ctx.is_main:
        write_config(config, run_dir / "config.yaml")
        ctx.metrics.truncate(ctx.state.global_step)
        ctx.samples.truncate(ctx.state.global_step)
        ctx.tool_calls.truncate(ctx.state.global_step)
    ctx.barrier()
    before = evaluate_split(ctx, "before") if config.eval.before and ctx.resume_path is None else None
    for i, (spec, stage) in enumerate(zip(config.stages, stages, strict=True)):
        if i < ctx.state.stage_index:
            continue
        ctx.state.stage = spec.name
        stage.run(ctx)
        ctx.state.stage_index, ctx.state.step, ctx.state.phase = i + 1, 0, 0
        ctx.save_checkpoint(f"stage-{i}-{spec.name}", {}, keep=None)
        if config.eval.between_stages and i + 1 < len(stages):
            evaluate_split(ctx, f"stage-{i}-{spec.name}")
    policy = ctx.policy()
    ctx.on_main(
        lambda: (
            policy.base.save_pretrained(run_dir / "model"),
            policy.processor.save_pretrained(run_dir / "model"),
        )
    )
    after = evaluate_split(ctx, "after") if config.eval.after else None
    if ctx.is_main and config.log.plot:
        plot(ctx.metrics, run_dir / "curves.png")
    if config.log.trackers:
        ctx.accelerator.end_training()
    return {"run_dir": str(run_dir), "before": before, "after": after, "is_main": ctx.is_main}


def has_eval(config: RunConfig) -> bool:
    """Whether the run has a held-out set: ``data.eval``, or the synthetic one when no data set is given."""
    d = config.data
    return d.eval is not None or (d.train is None and d.synth.eval_videos > 0)


def eval_batches(ctx: RunContext, split: str = "eval") -> Iterator[tuple[list[Any], Any]]:
    """The data set in order, in batches of ``eval.batch_size`` (first ``eval.max_samples``);
    undecodable videos raise, or are skipped with ``data.on_bad_row: skip``."""
    c, ds = ctx.config, ctx.dataset(split)
    processor = ctx.policy().processor
    clips = Clips(ds, ctx.video_backend, c.data)
    factor = processor.video_processor.temporal_patch_size
    n = len(ds) if c.eval.max_samples is None else min(len(ds), c.eval.max_samples)
    for i in range(0, n, c.eval.batch_size):
        samples, frames = [], []
        for sample in ds.samples[i : min(n, i + c.eval.batch_size)]:
            try:
                frames.append(clips.get(sample, factor))
            except VideoError:
                if c.data.on_bad_row != "skip":
                    raise
                continue
            samples.append(sample)
        if samples:
            batch = prepare_batch(processor, samples, frames, c.data.budget, ctx.system_prompt())[0]
            yield samples, batch.to(ctx.accelerator.device)


def tool_responder(ctx: RunContext, calls: list[list[dict]], split: str = "eval") -> Any:
    """``respond(samples, batch)`` for ``evaluate``: greedy tool roll-outs with the run's tools
    within ``eval``'s turn budgets, each answer's calls appended to ``calls``; None without tools."""
    runner, e = ctx.tool_runner(split), ctx.config.eval
    if runner is None:
        return None
    limits = TurnLimits(e.max_turns, e.max_new_tokens, e.max_total_tokens)
    greedy = Sampling(temperature=0.0, max_new_tokens=e.max_new_tokens)

    def respond(samples: Any, batch: Any) -> list[str]:
        _, convs = runner.rollout(batch, samples, 1, greedy, limits)
        calls.extend(conv.calls for conv in convs)
        return [conv.text for conv in convs]

    return respond


def score_split(ctx: RunContext, split: str = "eval") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy answers of the policy on ``split`` (tool roll-outs when the run lists tools):
    (scores — accuracy / mIoU per task, with tools ``tools/calls`` and ``tools/success`` —, every
    answer: sample, response, ``correct``, ``iou``, with tools its ``calls``)."""
    p, calls, answers = ctx.policy(), [], []
    respond = tool_responder(ctx, calls, split)

    def keep(texts: list[str], samples: Any) -> None:
        for k, (t, s) in enumerate(zip(texts, samples, strict=True)):
            ok, iou = grade(t, s)
            row = {"sample": s.id, "answer": s.answer, "response": t, "correct": ok, "iou": iou}
            answers.append(row if respond is None else {**row, "calls": calls[len(calls) - len(texts) + k]})

    result = evaluate(p.base, p.tokenizer, eval_batches(ctx, split), p.eos_id, ctx.config.eval.max_new_tokens,
                      on_batch=keep, respond=respond)  # fmt: skip
    if respond is not None:
        made = [x for conv_calls in calls for x in conv_calls]
        result["tools/calls"] = len(made) / max(1, len(calls))
        result["tools/success"] = sum(x["ok"] for x in made) / len(made) if made else 0.0
    return result, answers


def evaluate_split(ctx: RunContext, label: str) -> dict[str, float] | None:
    """``score_split`` on ``data.eval`` (main process), logged as ``eval/<metric>`` at the current
    step and written to ``eval-<label>.json``, every answer to ``eval-<label>-answers.jsonl``."""
    if not has_eval(ctx.config):
        return None
    if not ctx.is_main:
        ctx.barrier()
        return None
    result, answers = score_split(ctx)
    ctx.metrics.write(
        {"step": ctx.state.global_step, "eval": label, **{f"eval/{k}": v for k, v in result.items()}}
    )
    (ctx.run_dir / f"eval-{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    (ctx.run_dir / f"eval-{label}-answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    ctx.barrier()
    return result
