"""What tool use leaves to read: the roll-outs' tool results (stashed for rewards) and metrics,
``tools.jsonl`` (every roll-out's calls: arguments, outcome, frames returned) and frame strips
(``tool-frames/``: a PNG per roll-out with the prompt's frames, then each call's label and the
frames it returned)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidrl.config import TurnsConfig
from vidrl.tools.calls import TOOL_RESULTS
from vidrl.tools.multiturn import Conversation
from vidrl.types import Frames, Sample, ToolResults, TrainState


def tool_metrics(calls: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, float]:
    """``tools/calls`` (mean calls per roll-out) and ``tools/success`` (share of calls that worked)
    of the roll-outs' logged ``calls`` [B][n_i]."""
    made = [x for c in calls for x in c]
    return {"tools/calls": len(made) / max(1, len(calls)),
            "tools/success": sum(x["ok"] for x in made) / len(made) if made else 0.0}  # fmt: skip


def tool_results(
    convs: Sequence[Any], samples: Sequence[Sample], g: int
) -> tuple[list[str], list[Sample], dict]:
    """Texts [B] (the policy's turns), samples [B] carrying their ``ToolResults``, and
    ``tools/calls`` (mean calls per roll-out) and ``tools/success`` (share of calls that worked)."""
    reps, calls = [], [c.calls for c in convs]
    for i, c in enumerate(calls):
        s = samples[i // g]
        result = ToolResults(calls=len(c), succeeded=sum(x["ok"] for x in c))
        # the metadata key only for plugins written before the typed stash (deprecated)
        legacy = {**s.metadata, TOOL_RESULTS: {"calls": result.calls, "succeeded": result.succeeded}}
        reps.append(dataclasses.replace(s, metadata=legacy).with_extra(result))
    return [c.text for c in convs], reps, tool_metrics(calls)


class ToolLog:
    """A run's tool log: ``tools.jsonl`` and frame strips under ``tool-frames/``, as
    ``turns.frame_strips`` / ``turns.frame_strips_every`` say. Written by the main process."""

    def __init__(self, log: Any, run_dir: Path, turns: TurnsConfig):
        self.log, self.run_dir, self.turns = log, run_dir, turns

    def write(self, state: TrainState, record: Any) -> None:
        """A tool step's lines (every roll-out: its calls with arguments, outcome, frames
        returned) and, on step 1 and every ``frame_strips_every`` steps, the frame strips of the
        first ``frame_strips`` roll-outs that called a tool. ``record``: the step's ``StepRecord``."""
        s, turns = state, self.turns
        for i, (smp, conv) in enumerate(zip(record.samples, record.conversations, strict=True)):
            self.log.write({"step": s.global_step, "sample": smp.id, "row": i,
                            "reward": float(record.scores.total[i]), "calls": conv.calls})  # fmt: skip
        every = turns.frame_strips_every
        if not every or (s.step != 1 and s.step % every):
            return
        g = len(record.samples) // len(record.clips)
        for i in [i for i, c in enumerate(record.conversations) if c.calls][: turns.frame_strips]:
            smp = record.samples[i]
            title = (f"step {s.global_step} | {smp.id} | {smp.question} | answer: {smp.answer} | "
                     f"reward {float(record.scores.total[i]):.2f}")  # fmt: skip
            out = self.run_dir / "tool-frames" / f"step-{s.global_step:07d}-row-{i:03d}.png"
            frame_strip(strip_panels(record.conversations[i], record.clips[i // g]), title, out)


def call_label(call: Mapping[str, Any]) -> str:
    """One line for a logged call: ``name(arguments) -> ok | failed: <text>, <n> frames``."""
    args = ", ".join(f"{k}={v}" for k, v in call["arguments"].items())
    outcome = "ok" if call["ok"] else f"failed: {call['text']}"
    return f"{call['name']}({args}) -> {outcome}, {call['frames']} frames"


def strip_panels(conv: Conversation, clip: Frames | None) -> list[tuple[str, Frames | None]]:
    """The panels of a roll-out's frame strip (``frame_strip``): the prompt's
    frames, then each call with the frames its tool returned."""
    panels: list[tuple[str, Frames | None]] = [] if clip is None else [("prompt frames", clip)]
    for k, (call, obs) in enumerate(zip(conv.calls, conv.observations, strict=True)):
        panels.append((f"call {k + 1}: {call_label(call)}", obs.frames))
    return panels


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
