"""What a run leaves to read: JSONL logs (``metrics.jsonl``, ``samples.jsonl``) and a PNG of its
curves. Every line carries the global ``step``; a resumed run first drops the lines written after
its checkpoint, so a crash never leaves a step logged twice."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class JsonlLog:
    """An append-only JSONL file, flushed on every line (nothing is lost when the run dies)."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=_plain) + "\n")

    def read(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with self.path.open() as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def truncate(self, step: int) -> None:
        """Keep only the lines whose ``step`` is at most ``step`` (a partial last line goes too)."""
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= step:
                keep.append(line)
        self.path.write_text("".join(x + "\n" for x in keep))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def plot(metrics: JsonlLog, out: Path) -> Path | None:
    """``out``: reward curves per training step (total and per reward, a moving average over
    the noisy per-step values) and held-out accuracy / mIoU at each evaluation. None when there
    is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(metrics.read())
    train = [r for r in records if "reward/mean" in r]
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if not train and not evals:
        return None
    panels = [(draw, rows) for draw, rows in ((_rewards, train), (_evaluations, evals)) if rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (draw, rows) in zip(axes[0], panels, strict=True):
        draw(ax, rows)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _rewards(ax: Any, train: list[dict[str, Any]]) -> None:
    for key in sorted({k for r in train for k in r if k.startswith("reward/")}):
        pts = [(r["step"], r[key]) for r in train if _finite(r.get(key))]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, _smooth(list(ys)), label=key, lw=2 if key == "reward/mean" else 1)
    ax.set(title="training reward (moving average of 5 steps)", xlabel="step")


def _evaluations(ax: Any, evals: list[dict[str, Any]]) -> None:
    for key in sorted({k for r in evals for k in r if k.startswith("eval/")} - {"eval/n"}):
        pts = [(r["step"], r[key]) for r in evals if _finite(r.get(key))]
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", label=key, lw=2 if key.count("/") == 1 else 1)
    ax.set(title="held-out evaluation (greedy)", xlabel="step", ylim=(0, 1.05))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _smooth(values: list[float], k: int = 5) -> list[float]:
    return [
        sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1])
        for i in range(len(values))
    ]
