"""What a run leaves to read: JSONL logs (``metrics.jsonl``, ``samples.jsonl``) and a PNG of its
curves. Every line carries the global ``step``; a resumed run first drops the lines written after
its checkpoint, so a crash never leaves a step logged twice."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from vidrl.errors import ConfigError, choices_hint
from vidrl.tools.report import ToolLog


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


class RunLog:
    """A run's logs, written by the main process: ``metrics.jsonl`` (and the trackers, through
    ``accelerator`` when given), ``samples.jsonl`` (the first ``log.num_samples`` roll-outs every
    ``log.samples_every`` steps) and the tool log (``vidrl.tools.report.ToolLog``)."""

    def __init__(self, run_dir: Path, log: Any, turns: Any, accelerator: Any = None):
        self.config, self.accelerator = log, accelerator
        self.metrics, self.samples = JsonlLog(run_dir / "metrics.jsonl"), JsonlLog(run_dir / "samples.jsonl")
        self.tools = ToolLog(JsonlLog(run_dir / "tools.jsonl"), run_dir, turns)

    def truncate(self, step: int) -> None:
        """Drop what was logged after ``step`` (a resumed run redoes those steps)."""
        for log in (self.metrics, self.samples, self.tools.log):
            log.truncate(step)

    def step(self, s: Any, metrics: dict[str, float], record: Any = None) -> None:
        """One step at ``TrainState`` ``s``: its metrics, and from its ``StepRecord`` (if any) samples
        and tool lines."""
        self.metrics.write({"step": s.global_step, "stage": s.stage, "stage_step": s.step, **metrics})
        if self.accelerator is not None:
            self.accelerator.log(metrics, step=s.global_step)
        every, n = self.config.samples_every, self.config.num_samples
        if record is not None and every and s.step % every == 0:
            rows = []
            for i in range(min(n, len(record.texts))):
                smp = record.samples[i]
                rows.append({
                    "step": s.global_step, "sample": smp.id, "question": smp.question, "answer": smp.answer,
                    "response": record.texts[i], "reward": float(record.scores.total[i]),
                    "rewards": {k: float(v[i]) for k, v in record.scores.per_reward.items()},
                    "advantage": record.advantages.advantages[i].tolist(),
                })  # fmt: skip
                self.samples.write(rows[-1])
            if self.accelerator is not None:
                tracker_media(self.accelerator.trackers, s.global_step, rows, frame_strips(record, len(rows)))
        if record is not None and record.conversations is not None:
            self.tools.write(s, record)


COLUMNS = ("sample", "question", "response", "reward", "advantage")


def frame_strips(record: Any, rows: int, frames: int = 8) -> dict[str, Any]:
    """``frames/<sample id>`` → [H, k·W, 3] uint8: up to ``frames`` of the clip, side by side,
    for the prompts of the first ``rows`` roll-outs (none without the step's clips)."""
    if record.clips is None:
        return {}
    g = len(record.samples) // len(record.clips)
    out = {}
    for p in sorted({i // g for i in range(rows)}):
        clip = record.clips[p]
        if clip is not None:
            pick = torch.linspace(0, len(clip.pixels) - 1, min(frames, len(clip.pixels))).round().long()
            out[f"frames/{record.samples[p * g].id}"] = torch.cat(list(clip.pixels[pick]), dim=1).numpy()
    return out


def _table_row(row: dict[str, Any]) -> list[Any]:
    adv = row["advantage"]
    return [
        *(row[c] for c in COLUMNS[:-1]),
        float(adv if isinstance(adv, (int, float)) else sum(adv) / len(adv)),
    ]


def _tensorboard_media(tracker: Any, step: int, rows: list[dict[str, Any]], strips: dict[str, Any]) -> None:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in _table_row(r)]
        lines.append("| " + " | ".join(cells) + " |")
    tracker.writer.add_text("samples", "\n".join(lines), step)
    for name, strip in strips.items():
        tracker.writer.add_image(name, strip, step, dataformats="HWC")


def _wandb_media(tracker: Any, step: int, rows: list[dict[str, Any]], strips: dict[str, Any]) -> None:
    tracker.log_table("samples", columns=list(COLUMNS), data=[_table_row(r) for r in rows], step=step)
    if strips:
        tracker.log_images({name: [strip] for name, strip in strips.items()}, step=step)


#: tracker name → how roll-outs (a completion table) and frame strips reach it
MEDIA = {"tensorboard": _tensorboard_media, "wandb": _wandb_media}


def tracker_media(trackers: Any, step: int, rows: list[dict[str, Any]], strips: dict[str, Any]) -> None:
    """The logged roll-outs as a completion table (prompt, response, reward, advantage) and the
    prompts' frame strips, to every tracker that takes them (``MEDIA``); the others get scalars only."""
    for tracker in trackers:
        if tracker.name in MEDIA:
            MEDIA[tracker.name](tracker, step, rows, strips)


#: accelerate tracker name → the packages that provide it (any one)
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    **{name: (name,) for name in ("wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive")},
}


def check_trackers(names: tuple[str, ...]) -> list[str]:
    """``log.trackers`` as accelerate wants them; an unknown or uninstalled tracker is an error."""
    errors = []
    for name in names:
        if name not in TRACKER_PACKAGES:
            errors.append(f"log.trackers: unknown tracker {name!r}; {choices_hint(name, TRACKER_PACKAGES)}")
        elif not any(importlib.util.find_spec(p) for p in TRACKER_PACKAGES[name]):
            errors.append(
                f"log.trackers: {name!r} needs the package {TRACKER_PACKAGES[name][0]!r} (pip install it)"
            )
    if errors:
        raise ConfigError(errors)
    return list(names)


def flat_config(plain: Any, prefix: str = "") -> dict[str, Any]:
    """A plain config flattened to dotted keys with scalar values (trackers' hyper-parameters)."""
    if isinstance(plain, dict):
        return {
            k: v for key, value in plain.items() for k, v in flat_config(value, f"{prefix}{key}.").items()
        }
    if isinstance(plain, list):
        return {k: v for i, value in enumerate(plain) for k, v in flat_config(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): plain if isinstance(plain, (int, float, bool, str)) else str(plain)}
