"""``train``: a whole run — check every stage, evaluate before, run the stages in order (resuming
where a checkpoint says), save the final model, evaluate after, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidrl.config import RunConfig, stage_problems
from vidrl.engine.context import RunContext, write_config
from vidrl.engine.evaluation import evaluate_split, has_eval
from vidrl.engine.report import plot
from vidrl.errors import ConfigError
from vidrl.models.policy import save_final
from vidrl.plugin.session import Session


def train(config: RunConfig, session: Session, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Run ``config.stages`` in ``run_dir``; returns {"run_dir", "before", "after" (evaluations,
    None when not run or not the main process), "is_main"}. With ``resume``, continue from the
    newest checkpoint in ``run_dir``. Every process of a data-parallel run calls this."""
    stages = [session.create("stage", s.name, s.options) for s in config.stages]
    if not stages:
        raise ConfigError(["stages: a run needs at least one stage (e.g. sft, rl)"])
    errors = stage_problems(config, session)
    if errors:
        raise ConfigError(errors)
    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise ConfigError([f"output_dir: {run_dir} already holds a run; pass --resume to continue it "
                           "or choose another directory"])  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(config, session, run_dir, resume)
    if ctx.is_main:
        print(f"vidrl: {ctx.describe()}", flush=True)
    ctx.policy()  # collective set-up (model building, DDP wrapping, data synthesis) on every rank first
    ctx.dataset("train")
    if has_eval(config):
        ctx.dataset("eval")
    if ctx.is_main:
        write_config(config, run_dir / "config.yaml")
        ctx.log.truncate(ctx.state.global_step)
    ctx.barrier()
    before = (
        evaluate_split(ctx, "before") if config.eval.before and ctx.checkpoints.resume_path is None else None
    )
    for i, (spec, stage) in enumerate(zip(config.stages, stages, strict=True)):
        if i < ctx.state.stage_index:
            continue
        ctx.state.stage = spec.name
        stage.run(ctx)
        ctx.state.stage_index, ctx.state.step, ctx.state.phase = i + 1, 0, 0
        ctx.save_checkpoint(f"stage-{i}-{spec.name}", {}, keep=None)
        if config.eval.between_stages and i + 1 < len(stages):
            evaluate_split(ctx, f"stage-{i}-{spec.name}")
    after = evaluate_split(ctx, "after") if config.eval.after else None
    if ctx.is_main and config.log.plot:
        plot(ctx.log.metrics, run_dir / "curves.png")
    policy, lora = ctx.policy(), config.model.lora
    merge, weights = lora is not None and lora.merge, ctx.sharding.model_state(policy.base)
    # last: merging adapters changes the model (the final stage's checkpoint already holds it)
    ctx.on_main(lambda: save_final(policy.base, policy.processor, run_dir / "model", merge, weights))
    if config.log.trackers:
        ctx.accelerator.end_training()
    return {"run_dir": str(run_dir), "before": before, "after": after, "is_main": ctx.is_main}
