"""Checkpoints: written atomically, resumed exactly.

Layout under ``<run>/checkpoints/``: ``step-0000012/`` (every ``checkpoint.every`` steps; the
newest ``keep`` are kept) and ``stage-1-rl/`` (at the end of each stage; never pruned: it is the
next stage's starting point and reference). Each holds ``model/`` (``save_pretrained`` of the
model and its processor; the gathered full state dict of a sharded model) and ``state.pt``
(optimizer, scheduler, RNG states, data position, progress, plugin state; under FSDP2 the
optimizer state is in ``optimizer/``, one shard per process). A checkpoint is written to a
hidden temporary directory and renamed into place; ``latest`` (a one-line file, replaced
atomically) names the newest complete one, so a crash at any moment leaves the previous
checkpoint usable.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vidrl.errors import VidrlError

LATEST = "latest"


class CheckpointError(VidrlError):
    """A checkpoint is missing or unreadable."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, as plain values and tensors."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, keys.tolist(), int(pos), int(has_gauss), float(cached))


def staging(root: Path, name: str) -> Path:
    """The hidden directory checkpoint ``name`` is written into before ``commit`` (the same path
    on every rank; the main process clears it first)."""
    return root / f".{name}.tmp"


def write_rng(directory: Path, rank: int) -> None:
    """This rank's generator states, as ``rng-<rank>.pt`` (each rank samples differently)."""
    torch.save(rng_state(), directory / f"rng-{rank}.pt")


def read_rng(path: Path, rank: int) -> dict[str, Any]:
    file = path / f"rng-{rank}.pt"
    if not file.is_file():
        raise CheckpointError(
            f"{path} has no generator state for rank {rank}: was it written by fewer processes?"
        )
    return torch.load(file, map_location="cpu", weights_only=True)


def write_main(
    directory: Path, model: Any, processor: Any, state: dict[str, Any], weights: dict[str, Any] | None = None
) -> None:
    """The main process's part: ``model/`` (with the processor; ``weights``: the full state dict
    of a sharded model) and ``state.pt``."""
    model.save_pretrained(directory / "model", **({} if weights is None else {"state_dict": weights}))
    if processor is not None:
        processor.save_pretrained(directory / "model")
    torch.save(state, directory / "state.pt")


def commit(root: Path, name: str, keep: int | None) -> Path:
    """Rename the staged checkpoint into place, point ``latest`` at it, and with ``keep`` prune
    the oldest ``step-*`` checkpoints beyond that many. Main process only."""
    final = root / name
    if final.exists():  # re-saving the same step after a resume
        shutil.rmtree(final)
    os.rename(staging(root, name), final)
    _write_atomic(root / LATEST, name + "\n")
    if keep is not None:
        steps = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in steps[: max(0, len(steps) - keep)]:
            if old != final:
                shutil.rmtree(old)
    return final


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None when there is none."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not (path / "state.pt").is_file():
        raise CheckpointError(f"{pointer} names {path.name!r}, which is not a complete checkpoint")
    return path


def load_state(path: Path) -> dict[str, Any]:
    """``state.pt`` of a checkpoint, loaded with ``weights_only=True`` (tensors and plain values)."""
    try:
        return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types on a damaged file; all mean the same here
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


class Processes(Protocol):
    """The data-parallel processes as checkpointing sees them."""

    is_main: bool

    def on_main(self, fn: Callable[[], Any]) -> Any: ...

    def barrier(self) -> None: ...


class RunCheckpoints:
    """A run's ``checkpoints/``: the checkpoint being resumed (``resume_path``, its state read once),
    saving one (policy, the caller's ``blob``, progress, plugin and component state, every rank's
    generators) and the paths of stage and phase ends (the models later stages start from)."""

    def __init__(self, run_dir: Path, resume: bool, procs: Processes):
        self.dir, self.procs = Path(run_dir) / "checkpoints", procs
        self.resume_path = latest(self.dir) if resume else None
        if resume and self.resume_path is None:
            raise CheckpointError(f"nothing to resume: {self.dir} holds no complete checkpoint")
        self.resume_blob = load_state(self.resume_path) if self.resume_path else None

    def progress(self) -> dict[str, int]:
        """Where the resumed checkpoint stopped (stage_index, step, global_step, phase), or the start."""
        p = self.resume_blob["progress"] if self.resume_blob else {}
        return {k: int(p.get(k, 0)) for k in ("stage_index", "step", "global_step", "phase")}

    def save(self, name: str, blob: dict[str, Any], keep: int | None, state: Any, plugins: dict[str, Any],
             components: dict[str, Any], policy: Any, weights: dict[str, Any] | None = None,
             staged: dict[str, Callable[[Path], Any]] | None = None) -> Path:  # fmt: skip
        """Checkpoint ``name``: ``blob`` (schedule, data position) with the progress of ``state``,
        the ``plugins``' and ``components``' state, the policy (main process; ``weights``: its full
        state dict when sharded), this rank's generators, and each ``staged`` entry: called on every
        rank with the staging directory (to write shards there), what it returns kept in ``state.pt``
        (the optimizer). Committed atomically, keeping the newest ``keep`` step checkpoints."""
        progress = {k: getattr(state, k) for k in ("stage_index", "step", "global_step", "phase")}
        tmp, procs = staging(self.dir, name), self.procs
        procs.on_main(lambda: (shutil.rmtree(tmp, ignore_errors=True), tmp.mkdir(parents=True)))
        blob = {**blob, **{key: write(tmp) for key, write in (staged or {}).items()}}
        full = {**blob, "progress": progress, "plugins": plugins, "components": components}
        if procs.is_main:
            write_main(tmp, policy.base, policy.processor, full, weights)
        write_rng(tmp, state.rank)
        procs.barrier()
        procs.on_main(lambda: commit(self.dir, name, keep))
        return self.dir / name

    def take_resumed(self) -> dict[str, Any] | None:
        """The resumed checkpoint's state, once (the first loop restores from it; later ones start fresh)."""
        blob, self.resume_blob = self.resume_blob, None
        return blob

    def stage_end(self, index: int, name: str) -> Path:
        """The final model of stage ``index`` (named ``name``)."""
        return self.dir / f"stage-{index}-{name}" / "model"

    def phase_start(self, stage_index: int, phase: int) -> Path | None:
        """The newest phase-end model of stage ``stage_index`` before ``phase`` (None: none yet)."""
        done = [p for p in self.dir.glob(f"stage-{stage_index}.*") if _phase_of(p.name) < phase]
        return max(done, key=lambda p: _phase_of(p.name)) / "model" if done else None


def _phase_of(checkpoint_name: str) -> int:
    """``stage-2.5-dpo`` → 5."""
    return int(checkpoint_name.split("-")[1].split(".")[1])
