"""A run: the context every stage gets (model, data, components, logging, checkpoints, the
data-parallel world) and ``train``, which runs the configured stages in order.

Run directory: ``config.yaml`` (resolved), ``metrics.jsonl``, ``samples.jsonl``, ``eval-*.json``,
``curves.png``, ``checkpoints/`` (see ``vidrl.engine.checkpoint``), ``model/`` (the final policy), with
tools ``tools.jsonl`` and ``tool-frames/``, and for the demo ``base-model/`` and ``data/``. Only
the main process writes files other than its checkpoint generator state; metrics are the main
process's.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vidrl.config import ComponentSpec, RunConfig, to_plain
from vidrl.data.datasets import Dataset, load_dataset
from vidrl.data.video import select_backend
from vidrl.engine import checkpoint as ckpt
from vidrl.engine.checkpoint import RunCheckpoints
from vidrl.engine.evaluation import evaluate_split
from vidrl.engine.feed import Clips, PromptFeed, SampleStream
from vidrl.engine.loop import StepLoop
from vidrl.engine.optim import OptimConfig, build_optimizer
from vidrl.engine.report import RunLog, check_trackers, flat_config
from vidrl.engine.step import Algorithm, Collective
from vidrl.errors import ConfigError
from vidrl.models.policy import (
    AdapterDisabled,
    Policy,
    autocast_forward,
    load_model,
    resolve_precision,
    trainable_model,
)
from vidrl.models.sharding import fsdp_version, sharding_for
from vidrl.plugin.components import Component, RolloutBackend
from vidrl.plugin.session import Session
from vidrl.tools.multiturn import ToolRunner, tool_prompt
from vidrl.types import TrainState


class AccelerateCollective(Collective):
    """Sums, maxima and gathers over the ranks of an ``accelerate.Accelerator``."""

    def __init__(self, accelerator: Any):
        self.accelerator, self.size = accelerator, accelerator.num_processes

    def sum(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(t, reduction="sum"))

    def max(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.gather(t).max())

    def gather(self, obj: Any) -> list[Any]:
        from accelerate.utils import gather_object

        return gather_object([obj]) if self.size > 1 else [obj]


class RunContext:
    """What a ``Stage.run`` works with. Heavy things (model, data) load on first use."""

    def __init__(self, config: RunConfig, session: Session, run_dir: str | Path, resume: bool = False):
        from accelerate import Accelerator

        self.config, self.session, self.hook = config, session, session.hook
        self.run_dir = Path(run_dir)
        trackers = check_trackers(config.log.trackers) or None
        self.precision = resolve_precision(config.model.precision)
        mixed = "bf16" if self.precision == "bf16-mixed" else "no"
        _fresh_accelerator_state(mixed)
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(), log_with=trackers, project_dir=run_dir, mixed_precision=mixed
        )
        acc = self.accelerator
        check_distributed(str(acc.distributed_type), fsdp_version(acc))
        self.sharding = sharding_for(acc)
        self.sharding.check(config.model)
        if trackers:
            acc.init_trackers("vidrl", config=flat_config(to_plain(config)))
        self.world = AccelerateCollective(acc) if acc.num_processes > 1 else Collective()
        self.is_main = acc.is_main_process
        self.log = RunLog(self.run_dir, config.log, config.turns, acc if trackers else None)
        self.checkpoints = RunCheckpoints(self.run_dir, resume, self)
        p = self.checkpoints.progress()
        self.state = TrainState(p["stage_index"], "", p["step"], p["global_step"], self.run_dir,
                                acc.process_index, acc.num_processes, p["phase"])  # fmt: skip
        self._policy: Policy | None = None
        self._backend: RolloutBackend | None = None
        #: components whose ``state_dict`` goes into checkpoints (see ``create``)
        self.stateful: dict[str, Any] = {}
        self._datasets: dict[str, Dataset] = {}
        self._tools: dict[str, Any] | None = None
        self.video_backend = select_backend(session.registry("video_backend"), config.data.video_backend)

    # -- processes --------------------------------------------------------------------------

    def describe(self) -> str:
        """One line: processes, how they share the work, precision, gradient checkpointing."""
        acc, m = self.accelerator, self.config.model
        kind = str(acc.distributed_type).split(".")[-1].lower()
        how = "not distributed" if kind == "no" else kind
        how += "" if self.sharding.name == "none" else f", sharded: {self.sharding.name}"
        return (f"{acc.num_processes} process(es) ({how}) on {acc.device}, precision {self.precision}"
                f"{', gradient checkpointing' if m.gradient_checkpointing else ''}")  # fmt: skip

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def on_main(self, fn: Any) -> Any:
        """Run ``fn()`` on the main process only, then wait for every rank."""
        out = fn() if self.is_main else None
        self.barrier()
        return out

    def seed(self, *salt: int) -> None:
        """Seed Python, NumPy and torch from (config.seed, rank, *salt)."""
        s = hash((self.config.seed, self.state.rank, *salt)) % 2**31
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    # -- model ------------------------------------------------------------------------------

    def base_model_path(self) -> Path:
        """``model.path``, or the tiny model built into the run directory on first use."""
        if self.config.model.path is not None:
            return Path(self.config.model.path)
        out = self.run_dir / "base-model"

        def build() -> None:
            if not (out / "config.json").is_file():
                from vidrl.models.tiny import build_tiny_model

                m = self.config.model
                build_tiny_model(m.tiny_arch, out, seed=self.config.seed, size=m.tiny_size)

        self.on_main(build)
        return out

    def stage_start_path(self, index: int) -> Path:
        """The model a stage starts from: the base model, or the previous stage's final one."""
        if index == 0:
            return self.base_model_path()
        return self.checkpoints.stage_end(index - 1, self.config.stages[index - 1].name)

    def policy(self) -> Policy:
        """The trained model, loaded once per run (from the checkpoint when resuming)."""
        if self._policy is None:
            from transformers import AutoProcessor

            resumed = self.checkpoints.resume_path
            path = resumed / "model" if resumed else self.base_model_path()
            m = self.config.model
            if m.lora is not None and resumed:  # the checkpoint holds the adapters alone
                base = trainable_model(self.base_model_path(), m, adapters=path)
            else:
                base = trainable_model(path, m, seed=self.config.seed)
            if m.lora is not None and self.precision == "bf16-mixed":  # peft's generate skips the wrapper
                autocast_forward(base.get_base_model(), self.accelerator.autocast)
            model = self.sharding.prepare(base)
            self._policy = Policy(
                model, self.accelerator.unwrap_model(model), AutoProcessor.from_pretrained(path)
            )
        return self._policy

    def phase_start_path(self) -> Path:
        """The model the current phase of a loop stage started from: the newest phase-end
        checkpoint of this stage before the current phase, else the stage's start."""
        s = self.state
        return self.checkpoints.phase_start(s.stage_index, s.phase) or self.stage_start_path(s.stage_index)

    def reference(self) -> Any:
        """A frozen copy of the policy as it was when the current stage (or, in a loop stage,
        the current phase) started; with LoRA, the policy with its adapters off (the base)."""
        m = self.config.model
        if m.lora is not None:
            return AdapterDisabled(self.policy().base)
        ref = load_model(self.phase_start_path(), "float32", m.attn_implementation)
        return self.sharding.prepare_frozen(ref.eval().requires_grad_(False))  # the policy's numerics

    def optimizer(self, config: OptimConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        return build_optimizer(self.policy().model, config, total_steps)

    def rollout_backend(self, sync: bool = True) -> RolloutBackend:
        """The run's ``rollout`` backend (created once, attached to the policy), synced unless
        ``sync`` is False: a stage or an evaluation asks for it at its start, on every rank,
        after whatever changed the weights before."""
        if self._backend is None:
            spec = self.config.rollout or ComponentSpec("hf_generate")
            backend = self.create("rollout_backend", spec, "rollout")
            self._backend = backend.attach(self.policy().base)
        if sync:
            self._backend.sync()
        return self._backend

    # -- data -------------------------------------------------------------------------------

    def dataset(self, split: str) -> Dataset:
        """``data.train`` / ``data.eval``, or the synthetic tasks generated into ``data/``, or a
        split a stage added with ``add_dataset``."""
        if split not in self._datasets:
            if split not in ("train", "eval"):
                raise ConfigError(
                    [f"no data split {split!r}; valid: train, eval, {', '.join(self._datasets)}"]
                )
            d = self.config.data
            path = d.train if split == "train" else d.eval
            if path is None and d.train is None:
                path = self._synthesize(split)
            if path is None:
                raise ConfigError([f"data.{split}: no {split} data set is configured"])
            self._datasets[split] = load_dataset(path, d.root, d.on_bad_row, mapping=d.mapping())
        return self._datasets[split]

    def _synthesize(self, split: str) -> Path:
        from vidrl.data.synth import synthesize

        s = self.config.data.synth
        out = self.run_dir / "data" / split
        num, seed = (s.train_videos, s.seed) if split == "train" else (s.eval_videos, s.seed + 7919)

        def make() -> None:
            if not (out / "data.jsonl").is_file():
                synthesize(out, num, seed, s.difficulty, tasks=s.tasks, tool_responses=s.tool_responses)

        self.on_main(make)
        return out / "data.jsonl"

    def add_dataset(self, split: str, dataset: Dataset) -> None:
        """Make ``dataset`` available to ``dataset(split)`` and ``feed(split, ...)`` (a loop
        stage's preference pairs, or its pruned prompts); replaces an earlier one of that name."""
        if split in ("train", "eval"):
            raise ValueError(f"split {split!r} is the configured data set's; choose another name")
        self._datasets[split] = dataset

    def feed(self, split: str, batch_size: int) -> PromptFeed:
        """Shuffled batches of ``batch_size`` samples per rank, seeded per stage (and phase). When
        the run lists ``tools``, the system prompt lists them too (``vidrl.tool_prompt``), in
        every stage, so that a warm-up on tool calls sees the prompts RL will."""
        ds, s = self.dataset(split), self.state
        seed = self.config.seed * 1000 + s.stage_index + 100_003 * s.phase
        stream = SampleStream(len(ds), batch_size, seed, s.rank, s.world_size)
        clips = Clips(ds, self.video_backend, self.config.data)
        data = dataclasses.replace(self.config.data, system=self.system_prompt())
        processor, device = self.policy().processor, self.accelerator.device
        return PromptFeed(ds, stream, clips, processor, data, device, self.config.data.num_workers)

    def system_prompt(self) -> str | None:
        """``data.system``, followed by the run's ``tools`` (``vidrl.tool_prompt``) when it lists any."""
        return (
            tool_prompt(self.tools(), self.config.data.system)
            if self.config.tools
            else self.config.data.system
        )

    # -- components -------------------------------------------------------------------------

    def tools(self) -> dict[str, Any]:
        """The run's ``tools`` by name (created once)."""
        if self._tools is None:
            self._tools = {t.name: self.create("tool", t, f"tool/{t.name}") for t in self.config.tools}
        return self._tools

    def create(self, kind: str, spec: Any, key: str) -> Any:
        """Component ``spec`` (a ``ComponentSpec``) of ``kind``; a component with state of its own
        (``Component.state_dict`` overridden) is saved in checkpoints under ``key`` and restored
        on resume."""
        comp = self.session.create(kind, spec.name, spec.options)
        if type(comp).state_dict is not Component.state_dict:
            self.stateful[key] = comp
        return comp

    def tool_runner(self, split: str) -> ToolRunner | None:
        """Tool roll-outs and teacher forcing with the run's ``tools`` on ``split`` (None when
        the run lists no tools)."""
        if not self.config.tools:
            return None
        ds, budget = self.dataset(split), self.config.data.budget
        return ToolRunner(self.policy(), self.tools(), ds, self.video_backend, budget, self.rollout_backend())

    def algorithm(self) -> Algorithm:
        """The configured advantage estimator, policy loss and weighted rewards."""
        c = self.config
        missing = algorithm_missing(c)
        if missing:
            raise ConfigError([f"{k}: required by stage {self.state.stage!r}" for k in missing])
        rewards = [(r.name, r.weight, self._reward(i, r)) for i, r in enumerate(c.rewards)]
        augmenters = [
            self.create("augmenter", a, f"augmenter/{i}/{a.name}") for i, a in enumerate(c.augmenters)
        ]
        estimator = self.create("advantage", c.advantage, f"advantage/{c.advantage.name}")
        return Algorithm(estimator, self.create("loss", c.loss, f"loss/{c.loss.name}"), rewards, augmenters)

    def _reward(self, i: int, spec: Any) -> Any:
        reward = self.create("reward", spec, f"reward/{i}/{spec.name}")
        if spec.timeout is not None:  # 0: no limit
            reward.timeout_s = spec.timeout or None
        return reward

    def loop(self, total: int, optimizer: Any, scheduler: Any, feed: PromptFeed | None) -> StepLoop:
        return StepLoop(self, total, optimizer, scheduler, feed)

    # -- logging and checkpoints ------------------------------------------------------------

    def progress_bar(self, total: int, initial: int, desc: str) -> Any:
        from tqdm.auto import tqdm

        off = not (self.is_main and self.config.log.progress)
        return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=off, dynamic_ncols=True)

    def log_step(self, metrics: dict[str, float], record: Any = None) -> None:
        """Log a step (main process): ``metrics.jsonl``, trackers, samples, the tool log."""
        if self.is_main:
            self.log.step(self.state, metrics, record)

    def save_checkpoint(
        self, name: str, blob: dict[str, Any], keep: int | None, optimizer: Any = None
    ) -> Path:
        """Checkpoint ``name`` with ``blob``, the ``optimizer``'s state (written as shards under
        FSDP2), and the plugins' (``on_checkpoint_save``) and the run's components' (``stateful``)
        state."""
        plugins: dict[str, Any] = {}
        for part in self.hook.on_checkpoint_save(state=self.state):
            clash = set(plugins) & set(part or {})
            if clash:
                raise ValueError(f"two plugins saved the same checkpoint keys {sorted(clash)}")
            plugins.update(part or {})
        components = {key: comp.state_dict() for key, comp in self.stateful.items()}
        policy, sharding = self.policy(), self.sharding
        staged = {}
        if optimizer is not None:  # every rank: shards under FSDP2
            staged["optimizer"] = lambda path: sharding.save_optimizer(path, policy.base, optimizer)
        weights = sharding.model_state(policy.base)  # every rank: a collective under FSDP2
        return self.checkpoints.save(
            name, blob, keep, self.state, plugins, components, policy, weights, staged
        )

    def restore(self, loop: StepLoop) -> None:
        """Resume ``loop`` from the checkpoint being resumed (used once, by the first loop):
        plugin state always; component (``stateful``) state, optimizer, schedule, data position and
        generators when the checkpoint is inside the stage (the run's tools' state always), else the
        stage is seeded as a fresh one is."""
        blob = self.checkpoints.take_resumed()
        if blob is not None:
            self.hook.on_checkpoint_load(state=self.state, blob=blob["plugins"])
            saved = blob.get("components", {})
            for key, comp in self.stateful.items():
                # a stage's components start fresh with the stage, as in an uninterrupted run; the
                # run's tools live as long as the run
                if key in saved and (loop.start > 0 or key.startswith("tool/")):
                    comp.load_state_dict(saved[key])
        if blob is None or loop.start == 0:
            phase = self.state.phase
            self.seed(self.state.stage_index, *([phase] if phase else []))
            return
        path = self.checkpoints.resume_path
        self.sharding.load_optimizer(blob["optimizer"], path, self.policy().base, loop.optimizer)
        if loop.scheduler is not None:
            loop.scheduler.load_state_dict(blob["scheduler"])
        if loop.feed is not None:
            loop.feed.load_state_dict({"skipped": blob["skipped"], **blob["feed"]})  # older: skipped apart
        ckpt.set_rng_state(ckpt.read_rng(self.checkpoints.resume_path, self.state.rank))

    # -- loop stages ------------------------------------------------------------------------

    def run_phase(self, index: int, name: str, fn: Any, checkpoint: bool = True) -> bool:
        """Run phase ``index`` (0, 1, ...) of a loop stage: ``fn()``, unless a resumed checkpoint
        says the phase is done (then False). Steps restart at 0 in each phase. With
        ``checkpoint``, its end is saved as ``stage-<i>.<index>-<name>`` (never pruned: the
        next phase's reference) and evaluated when ``eval.between_stages``; a phase without one
        (cheap, writing only files) is re-run when a crash comes before the next checkpoint."""
        s = self.state
        if index < s.phase:
            return False
        stage = s.stage
        s.phase, s.stage = index, f"{stage}/{name}"
        try:
            fn()
        finally:
            s.stage = stage
        s.phase, s.step = index + 1, 0
        if checkpoint:
            label = f"stage-{s.stage_index}.{index}-{name}"
            self.save_checkpoint(label, {}, keep=None)
            if self.config.eval.between_stages:
                self.evaluate(label)
        return True

    def evaluate(self, label: str) -> dict[str, float] | None:
        """Held-out accuracy / mIoU of the policy now (``vidrl.engine.evaluation.evaluate_split``)."""
        return evaluate_split(self, label)


#: accelerate's distributed types vidrl honours: one process, DDP over GPUs or CPU processes, FSDP2
SUPPORTED_DISTRIBUTED = ("NO", "MULTI_GPU", "MULTI_CPU", "FSDP")


def check_distributed(distributed_type: str, fsdp: int | None = None) -> None:
    """Refuse at start an accelerate setting vidrl cannot honour (DeepSpeed, FSDP1, ...): it would
    train without sharding or synchronisation it believes it has, a silent divergence.
    ``fsdp``: the FSDP version asked for (``vidrl.models.sharding.fsdp_version``)."""
    name = distributed_type.split(".")[-1]
    if fsdp not in (None, 2):
        raise ConfigError([
            f"accelerate is configured for FSDP version {fsdp}; vidrl supports FSDP2 only: set "
            "fsdp_config.fsdp_version: 2 (examples/accelerate/fsdp2.yaml)"
        ])  # fmt: skip
    if name not in SUPPORTED_DISTRIBUTED:
        raise ConfigError([
            f"accelerate is configured for {name}, which vidrl does not support yet; supported: one "
            "process, data parallel (MULTI_GPU, MULTI_CPU) and FSDP2 through `accelerate launch` with "
            "examples/accelerate/ddp.yaml or fsdp2.yaml (DeepSpeed ZeRO is open work: docs/scaling.md)"
        ])  # fmt: skip


def _fresh_accelerator_state(mixed_precision: str) -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with another
    precision; a run (or ``vidrl eval``) after another one in the same process, with another
    precision, starts from a fresh one (the process group, in ``PartialState``, is kept)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state()


def algorithm_missing(config: RunConfig) -> list[str]:
    """The config keys an RL stage needs that are not set (advantage, loss, rewards)."""
    return [k for k in ("advantage", "loss") if getattr(config, k) is None] + (
        [] if config.rewards else ["rewards"]
    )


def write_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_plain(config), sort_keys=False))
