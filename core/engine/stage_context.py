"""``StageContext``: everything a ``Stage.run`` may use, and nothing else. The engine's
``RunContext`` implements it (``tests/core/test_stage_context.py`` checks that, and that the
built-in stages use nothing outside it); a stage written against this protocol keeps working when
the run context's insides change.

A stage's life: read its options, get the model (``policy``), an optimizer and a ``feed`` of
prompts, then ``for step in context.loop(...)``: compute, step, ``loop.end_step(metrics)``. The
loop resumes, logs, checkpoints and shows progress. A loop stage (VerIPO) runs ``run_phase`` s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from vidrl.config import ComponentSpec, RunConfig
    from vidrl.data.datasets import Dataset
    from vidrl.engine.feed import PromptFeed
    from vidrl.engine.loop import StepLoop
    from vidrl.engine.optim import OptimConfig
    from vidrl.engine.step import Algorithm, Collective, StepRecord
    from vidrl.models.policy import Policy
    from vidrl.plugin.components import Component, RolloutBackend
    from vidrl.plugin.session import Session
    from vidrl.tools.multiturn import ToolRunner
    from vidrl.types import TrainState


@runtime_checkable
class StageContext(Protocol):
    """What ``Stage.run(context)`` receives.

    Attributes: ``config`` (the whole ``RunConfig``), ``session`` (plugins, registries,
    ``create`` and ``subscribed``), ``hook`` (the event hooks), ``state`` (the ``TrainState``,
    updated by the engine), ``run_dir`` (the run directory), ``is_main`` (this is the main
    process), ``world`` (the data-parallel ranks: ``size`` and ``sum``).
    """

    config: RunConfig
    session: Session
    hook: Any
    state: TrainState
    run_dir: Path
    is_main: bool
    world: Collective

    # -- model ------------------------------------------------------------------------------

    def policy(self) -> Policy:
        """The trained model (loaded once per run; from the checkpoint when resuming)."""
        ...

    def reference(self) -> Any:
        """A frozen copy of the policy as it was when this stage (or loop phase) started."""
        ...

    def optimizer(self, config: OptimConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """An optimizer over the policy's trainable parameters and its schedule."""
        ...

    def rollout_backend(self, sync: bool = True) -> RolloutBackend:
        """The run's ``rollout`` backend, attached to the policy and (unless ``sync`` is False)
        synced with its weights; ask on every rank."""
        ...

    # -- data -------------------------------------------------------------------------------

    def dataset(self, split: str) -> Dataset:
        """``train``, ``eval``, or a split added with ``add_dataset``."""
        ...

    def add_dataset(self, split: str, dataset: Dataset) -> None:
        """Make ``dataset`` readable as ``split`` (a loop stage's pairs or pruned prompts)."""
        ...

    def feed(self, split: str, batch_size: int) -> PromptFeed:
        """Shuffled, resumable batches of ``batch_size`` prompts per process, prepared for the model."""
        ...

    # -- components -------------------------------------------------------------------------

    def algorithm(self) -> Algorithm:
        """The run's advantage estimator, policy loss, weighted rewards and augmenters."""
        ...

    def create(self, kind: str, spec: ComponentSpec, key: str) -> Component:
        """A component of ``kind`` from its spec; its own state (if any) is checkpointed under ``key``."""
        ...

    def tool_runner(self, split: str) -> ToolRunner | None:
        """Tool roll-outs and teacher forcing with the run's tools (None: the run lists none)."""
        ...

    # -- steps, logs, processes -------------------------------------------------------------

    def loop(self, total: int, optimizer: Any, scheduler: Any, feed: PromptFeed | None) -> StepLoop:
        """The resumable loop over this stage's ``total`` steps (logs, progress, checkpoints)."""
        ...

    def log_step(self, metrics: dict[str, float], record: StepRecord | None = None) -> None:
        """Log a step that does not go through ``loop.end_step`` (``end_step`` logs its own)."""
        ...

    def progress_bar(self, total: int, initial: int, desc: str) -> Any:
        """A tqdm bar, shown on the main process only when ``log.progress`` is on."""
        ...

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on the main process only, then every rank waits; returns its value there."""
        ...

    def barrier(self) -> None:
        """Wait for every rank."""
        ...

    def run_phase(self, index: int, name: str, fn: Callable[[], Any], checkpoint: bool = True) -> bool:
        """Phase ``index`` of a loop stage: ``fn()`` unless a resumed checkpoint says it is done."""
        ...

    def evaluate(self, label: str) -> dict[str, float] | None:
        """Held-out accuracy / mIoU of the policy now, logged and written as ``eval-<label>.json``."""
        ...
