"""What a run leaves to read: JSONL logs (``metrics.jsonl``, ``samples.jsonl``) and a PNG of its
curves. Every line carries the global ``step``; a resumed run first drops the lines written after
its checkpoint, so a crash never leaves a step logged twice."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
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


def frame_strip(panels: Sequence[tuple[str, Any]], title: str, out: Path, height: int = 96,
                max_frames: int = 16) -> Path:  # fmt: skip
    """``out``: a PNG with ``title`` (wrapped, at most 3 lines) and one row per panel: its label,
    then its frames (a ``vidrl.Frames``, [F, H, W, 3] uint8; at most ``max_frames``, spread
    uniformly) scaled to ``height`` pixels, each captioned with its time. A panel without frames
    is its label alone."""
    from PIL import Image, ImageDraw

    rows = [(label, _strip_images(frames, height, max_frames)) for label, frames in panels]
    line, gap = 14, 4
    width = max([640] + [sum(im.width + gap for im, _ in imgs) + gap for _, imgs in rows])
    chars = width // 6
    heading = textwrap.wrap(title, chars)[:3] or [""]
    total = line * len(heading) + gap + sum(line + (height + line if imgs else 0) + gap for _, imgs in rows)
    canvas = Image.new("RGB", (width, total), "white")
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(heading):
        draw.text((gap, 1 + k * line), text, fill="black")
    y = line * len(heading) + gap
    for label, imgs in rows:
        draw.text((gap, y), label[:chars], fill="black")
        y += line
        x = gap
        for im, t in imgs:
            canvas.paste(im, (x, y))
            draw.text((x, y + height + 1), f"{t:.2f}s", fill="dimgray")
            x += im.width + gap
        y += (height + line if imgs else 0) + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _strip_images(frames: Any, height: int, max_frames: int) -> list[tuple[Any, float]]:
    """(PIL image scaled to ``height``, time) for up to ``max_frames`` frames spread uniformly."""
    from PIL import Image

    if frames is None or len(frames.times) == 0:
        return []
    n = len(frames.times)
    picks = sorted({round(i * (n - 1) / max(1, min(n, max_frames) - 1)) for i in range(min(n, max_frames))})
    out = []
    for j in picks:
        im = Image.fromarray(frames.pixels[j].cpu().numpy())
        out.append(
            (im.resize((max(1, round(im.width * height / im.height)), height)), float(frames.times[j]))
        )
    return out
