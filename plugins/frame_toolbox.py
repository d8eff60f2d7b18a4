"""The frame toolbox (VITAL, arXiv:2508.04416; docs/algorithms.md, 'Frame toolbox — specification'):
tools a model calls mid-reasoning to look at its video again. Public API only.

- ``get_video_clip_frame(start_time, end_time)``: the frames of [start, end] at 2 fps (at most
  64; a longer clip is subsampled uniformly), each within a pixel budget and stamped with its
  time. Valid only when 0 ≤ start < end ≤ duration and end − start > 1 s.
- ``zoom_in_frame(time, x1, y1, x2, y2)``: the frame nearest ``time``, cropped to the box given in
  fractions of the width and height (0 ≤ x1 < x2 ≤ 1, 0 ≤ y1 < y2 ≤ 1, each side at least
  ``min_box``), enlarged to the pixel budget and stamped with its time.

Both return a ``vidrl.Observation`` whose frames are a video input for the next turn; invalid
arguments give an error observation that states the rule and the values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import vidrl


def fit_pixels(pixels: torch.Tensor, max_pixels: int, enlarge: bool = False) -> torch.Tensor:
    """[F, H, W, 3] uint8 resized (aspect kept, bilinear) so that H·W ≤ ``max_pixels``; with
    ``enlarge``, a smaller image is also scaled up to the budget."""
    h, w = pixels.shape[1:3]
    scale = math.sqrt(max_pixels / (h * w))
    if scale >= 1 and not enlarge:
        return pixels
    size = (max(1, math.floor(h * scale)), max(1, math.floor(w * scale)))
    x = pixels.permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _video(context: vidrl.ToolContext) -> tuple[Any, float] | vidrl.Observation:
    """(the video's header info, its duration), or an error when the prompt has no video."""
    if context.video_path is None or context.backend is None:
        return vidrl.tool_error("this prompt has no video to look at")
    info = context.backend.probe(context.video_path)
    return info, context.duration if context.duration is not None else info.duration


@dataclass(frozen=True)
class _Budget:
    max_pixels: int = 64 * 28 * 28
    timestamps: bool = True


class GetVideoClipFrame(vidrl.Tool):
    """Frames of a time window of the prompt's video (see the module docstring)."""

    name = "get_video_clip_frame"
    description = (
        "Get frames of the video between start_time and end_time (seconds) to look at that part again. "
        "Needs 0 <= start_time < end_time <= the video's duration and end_time - start_time > 1."
    )
    parameters = {
        "type": "object",
        "properties": {
            "start_time": {"type": "number", "description": "start of the clip, in seconds"},
            "end_time": {"type": "number", "description": "end of the clip, in seconds"},
        },
        "required": ["start_time", "end_time"],
    }

    @dataclass(frozen=True)
    class Config(_Budget):
        fps: float = 2.0
        max_frames: int = 64
        min_length: float = 1.0
        frame_factor: int = 2

        def __post_init__(self) -> None:
            if (
                self.fps <= 0
                or self.max_frames < self.frame_factor
                or self.max_pixels < 1
                or self.min_length < 0
            ):
                raise ValueError(f"need fps > 0, max_frames >= frame_factor, max_pixels >= 1: {self}")

    def __call__(self, arguments: Mapping[str, Any], context: vidrl.ToolContext) -> vidrl.Observation:
        c = self.config
        s, e = float(arguments["start_time"]), float(arguments["end_time"])
        video = _video(context)
        if isinstance(video, vidrl.Observation):
            return video
        info, duration = video
        if not (0 <= s < e <= duration and e - s > c.min_length):
            return vidrl.tool_error(
                f"invalid clip [{s:g}, {e:g}]: need 0 <= start_time < end_time <= {duration:.2f} (the "
                f"video's duration) and end_time - start_time > {c.min_length:g}",
                start=s, end=e,
            )  # fmt: skip
        indices = vidrl.plan_frames(info, c.fps, c.frame_factor, c.max_frames, c.frame_factor, start=s, end=e)
        frames = vidrl.decode_frames(context.backend, context.video_path, indices, info)
        frames = vidrl.Frames(fit_pixels(frames.pixels, c.max_pixels), frames.times, frames.indices, info)
        if c.timestamps:
            frames = vidrl.burn_timestamps(frames)
        times = [round(t, 3) for t in frames.times.tolist()]
        text = f"Video clip from {s:g} to {e:g} seconds."
        return vidrl.Observation(
            text, frames, info={"start": s, "end": e, "frames": len(times), "times": times}
        )


class ZoomInFrame(vidrl.Tool):
    """One frame, cropped to a box and enlarged (see the module docstring)."""

    name = "zoom_in_frame"
    description = (
        "Zoom into one frame: the frame nearest `time` (seconds), cropped to the box (x1, y1)-(x2, y2) "
        "given as fractions of the width and height (0 = left/top, 1 = right/bottom)."
    )
    parameters = {
        "type": "object",
        "properties": {k: {"type": "number"} for k in ("time", "x1", "y1", "x2", "y2")},
        "required": ["time", "x1", "y1", "x2", "y2"],
    }

    @dataclass(frozen=True)
    class Config(_Budget):
        min_box: float = 0.05
        frame_factor: int = 2

        def __post_init__(self) -> None:
            if not 0 < self.min_box <= 1 or self.frame_factor < 1 or self.max_pixels < 1:
                raise ValueError(f"need 0 < min_box <= 1, frame_factor >= 1, max_pixels >= 1: {self}")

    def __call__(self, arguments: Mapping[str, Any], context: vidrl.ToolContext) -> vidrl.Observation:
        c = self.config
        t, x1, y1, x2, y2 = (float(arguments[k]) for k in ("time", "x1", "y1", "x2", "y2"))
        video = _video(context)
        if isinstance(video, vidrl.Observation):
            return video
        info, duration = video
        box_ok = 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and min(x2 - x1, y2 - y1) >= c.min_box
        if not (0 <= t <= duration and box_ok):
            return vidrl.tool_error(
                f"invalid zoom at {t:g} s on ({x1:g}, {y1:g})-({x2:g}, {y2:g}): need 0 <= time <= "
                f"{duration:.2f}, 0 <= x1 < x2 <= 1, 0 <= y1 < y2 <= 1 and sides >= {c.min_box:g}",
                time=t,
            )  # fmt: skip
        index = min(info.num_frames - 1, round(t * info.fps))
        frame = vidrl.decode_frames(context.backend, context.video_path, [index], info)
        h, w = frame.pixels.shape[1:3]
        top, left = math.floor(y1 * h), math.floor(x1 * w)
        bottom, right = max(top + 1, math.ceil(y2 * h)), max(left + 1, math.ceil(x2 * w))
        crop = fit_pixels(frame.pixels[:, top:bottom, left:right], c.max_pixels, enlarge=True)
        n = c.frame_factor  # the processors take videos in multiples of their temporal patch
        frames = vidrl.Frames(crop.repeat(n, 1, 1, 1), frame.times.repeat(n), frame.indices.repeat(n), info)
        if c.timestamps:
            frames = vidrl.burn_timestamps(frames)
        when = float(frame.times[0])
        text = f"Frame at {when:.2f} seconds, region ({x1:g}, {y1:g})-({x2:g}, {y2:g}), enlarged."
        return vidrl.Observation(text, frames, info={"time": when, "box": [x1, y1, x2, y2], "frames": 1})


@vidrl.hookimpl
def register_tools(register):
    register(GetVideoClipFrame)
    register(ZoomInFrame)
