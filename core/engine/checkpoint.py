"""Checkpoints: written atomically, resumed exactly.

Layout under ``<run>/checkpoints/``: ``step-0000012/`` (every ``checkpoint.every`` steps; the
newest ``keep`` are kept) and ``stage-1-rl/`` (at the end of each stage; never pruned: it is the
next stage's starting point and reference). Each holds ``model/`` (``save_pretrained`` of the
model and its processor) and ``state.pt`` (optimizer, scheduler, RNG states, data position,
progress, plugin state). A checkpoint is written to a hidden temporary directory and renamed into
place; ``latest`` (a one-line file, replaced atomically) names the newest complete one, so a crash
at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

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


def write_main(directory: Path, model: Any, processor: Any, state: dict[str, Any]) -> None:
    """The main process's part: ``model/`` (with the processor) and ``state.pt``."""
    model.save_pretrained(directory / "model")
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
