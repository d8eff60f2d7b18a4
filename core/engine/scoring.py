"""Composing rewards: the weighted total of the configured rewards, and per-reward scores.

A reward that raises, returns the wrong number of scores, or returns NaN/inf is an error naming
the reward and the sample: a bad score is never averaged away. A reward may return None for a
response it declines to score ("no opinion"); a sample no reward scores is left out of its group's
statistics (``Scores.scored``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vidrl.errors import ComponentError
from vidrl.plugin.components import Need, Reward, owner
from vidrl.types import Sample, Scores


class RewardError(ComponentError):
    """A reward function failed or returned a non-finite score; the message names the reward, its
    plugin and the sample."""


def score(
    rewards: Sequence[tuple[str, float, Reward]], responses: Sequence[str], samples: Sequence[Sample],
    lengths: Sequence[int] | None = None,
) -> Scores:  # fmt: skip
    """Apply each (name, weight, reward) to the responses of the samples it applies to; a reward
    that declares ``Need.RESPONSE_LENGTHS`` also gets their token counts (from ``lengths`` [B])."""
    if len(responses) != len(samples) or (lengths is not None and len(lengths) != len(samples)):
        raise ValueError(
            f"{len(responses)} responses and {len(lengths or ())} lengths for {len(samples)} samples"
        )
    total = torch.zeros(len(samples), dtype=torch.float64)
    per: dict[str, torch.Tensor] = {}
    for name, weight, reward in rewards:
        idx = [
            i for i, s in enumerate(samples) if reward.task_types is None or s.task_type in reward.task_types
        ]
        col = torch.full((len(samples),), math.nan, dtype=torch.float64)
        if idx:
            extra = _lengths(name, reward, lengths, idx)
            values = _call(name, reward, [responses[i] for i in idx], [samples[i] for i in idx], extra)
            col[idx] = torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float64)
            total += weight * torch.nan_to_num(col, nan=0.0)
        per[name] = col
    return Scores(total.float(), {k: v.float() for k, v in per.items()})


class _Expired(Exception):
    """A reward call outlived its time limit (never a reward's own exception)."""


def _within(seconds: float | None, fn: Callable[[], Any]) -> Any:
    """``fn()``, run in a daemon thread when ``seconds`` is set (on the caller's CUDA device):
    ``_Expired`` when it has not returned by then (the thread is left behind; it cannot hold the
    process open)."""
    if seconds is None:
        return fn()
    out: dict[str, Any] = {}
    device = (
        torch.cuda.current_device() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )

    def run() -> None:
        try:
            if device is not None:
                torch.cuda.set_device(device)  # the current device is per thread
            out["value"] = fn()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    worker = threading.Thread(target=run, name="vidrl-reward", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Expired
    if "error" in out:
        raise out["error"]
    return out["value"]


def _lengths(
    name: str, reward: Reward, lengths: Sequence[int] | None, idx: list[int]
) -> dict[str, list[int]]:
    """``{"lengths": [n]}`` for a reward that needs the responses' token counts, else ``{}``."""
    if Need.RESPONSE_LENGTHS not in reward.needs():
        return {}
    if lengths is None:
        raise RewardError(
            f"reward {name!r} ({owner(reward)}) needs response lengths, which this scoring lacks"
        )
    return {"lengths": [int(lengths[i]) for i in idx]}


def _call(
    name: str, reward: Reward, responses: list[str], samples: list[Sample], extra: dict[str, list[int]]
) -> list[float | None]:
    who = f"reward {name!r} ({owner(reward)})"
    ids = ", ".join(s.id for s in samples[:5])
    try:
        got = _within(reward.timeout_s, lambda: reward(responses, samples, **extra))
        values = [None if v is None else float(v) for v in got]
    except _Expired:
        raise RewardError(
            f"{who} did not return within {reward.timeout_s:g} s on samples [{ids}...]; if it needs "
            "longer, raise its timeout (rewards[i].timeout in the run config)"
        ) from None
    except Exception as e:
        raise RewardError(f"{who} raised on samples [{ids}...]: {type(e).__name__}: {e}") from e
    if len(values) != len(samples):
        raise RewardError(f"{who} returned {len(values)} scores for {len(samples)} responses")
    for v, s in zip(values, samples, strict=True):
        if v is not None and not math.isfinite(v):
            raise RewardError(f"{who} returned {v} for sample {s.id!r}")
    return values
