"""The step loop every training stage runs: resume position, hooks, logs, progress bar and
checkpoints, so that a stage's own code is only "draw a batch, compute, step"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidrl.engine.step_metrics import over_ranks

if TYPE_CHECKING:
    from vidrl.engine.context import RunContext
    from vidrl.engine.feed import PromptFeed


class StepLoop:
    """``for step in loop: ...; loop.end_step(metrics)``. Iterates over the steps of a stage not
    yet done (all of them, or those after the checkpoint being resumed). Owns the optimizer,
    scheduler and feed whose state goes into checkpoints."""

    def __init__(self, run: RunContext, total: int, optimizer: Any, scheduler: Any, feed: PromptFeed | None):
        self.run, self.total = run, total
        self.optimizer, self.scheduler, self.feed = optimizer, scheduler, feed
        self.state = run.state
        self.start = self.state.step
        run.restore(self)
        self.bar = run.progress_bar(total, self.start, desc=f"{self.state.stage_index}:{self.state.stage}")
        self._t = time.perf_counter()

    def __iter__(self) -> Iterator[int]:
        yield from range(self.start, self.total)
        self.bar.close()
        if self.feed is not None:
            self.feed.close()  # no batch decoded for a step that will not come

    def end_step(self, metrics: dict[str, float], record: Any = None) -> None:
        """After an optimizer step (every rank calls it): the metrics over all ranks
        (``over_ranks``), ``on_step_end``, ``metrics.jsonl``, samples (from the main rank's
        ``record``), progress, checkpoint."""
        self.state.step += 1
        self.state.global_step += 1
        if self.feed is not None:
            metrics["data/skipped"] = float(self.feed.skipped)
            metrics["data/video_fallbacks"] = float(self.feed.fallbacks)
        metrics = over_ranks(self.run.world, metrics)  # every rank's, not the main one's alone
        self.run.hook.on_step_end(state=self.state, metrics=metrics)
        self.run.log_step(metrics, record)
        now = time.perf_counter()
        shown = {k: metrics[k] for k in ("reward/mean", "loss") if k in metrics}
        self.bar.set_postfix({**{k: f"{v:.3g}" for k, v in shown.items()}, "s/step": f"{now - self._t:.1f}"})
        self._t = now
        self.bar.update(1)
        every = self.run.config.checkpoint.every
        if every and self.state.global_step % every == 0 and self.state.step < self.total:
            self.save(f"step-{self.state.global_step:07d}", keep=self.run.config.checkpoint.keep)

    def save(self, name: str, keep: int | None = None) -> Path:
        """A checkpoint of the policy, this loop's optimizer, schedule and data position, the
        generators of every rank and the plugins' state."""
        blob = {
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "feed": None if self.feed is None else self.feed.state_dict(),
            "skipped": 0 if self.feed is None else self.feed.skipped,
        }
        return self.run.save_checkpoint(name, blob, keep, optimizer=self.optimizer)
