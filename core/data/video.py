"""Video decoding: which frames to read, the backend interface, and the errors.

A ``VideoBackend`` (a component kind, so a plugin can add one) probes a file and decodes a list
of frame indices. ``plan_frames`` chooses the indices exactly as ``qwen_vl_utils`` does: frames at
a target fps, between ``min_frames`` and ``max_frames`` (a long clip is subsampled uniformly), a
count rounded down to a multiple of ``frame_factor`` (the processors' temporal patch), within an
optional [start, end] window. Only the planned frames are decoded.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vidrl.errors import VidrlError
from vidrl.plugin.components import VideoBackend
from vidrl.plugin.registry import Registry
from vidrl.types import Frames, VideoInfo


class VideoError(VidrlError):
    """A video is missing, truncated, corrupt or has no frames. The message names the file (and
    the data-set row, when known)."""


def plan_frames(
    info: VideoInfo,
    fps: float = 2.0,
    min_frames: int = 4,
    max_frames: int = 64,
    frame_factor: int = 2,
    start: float = 0.0,
    end: float | None = None,
) -> list[int]:
    """Frame indices to decode, as ``qwen_vl_utils`` chooses them (``calculate_video_frame_range``,
    ``smart_nframes``; parity tested in ``tests/core/test_qwen_parity.py``): the window's frames
    [ceil(start · video fps), floor(end · video fps)] (the whole video without ``end``); their
    duration × ``fps`` clamped to [``min_frames`` rounded up, ``max_frames`` rounded down to a
    multiple of ``frame_factor``] and to the frames in the window, rounded down to a multiple of
    ``frame_factor``; spread uniformly (first and last included). One deliberate difference: a
    window holding fewer frames than ``frame_factor`` (a still video) repeats its frames up to
    ``frame_factor`` where ``qwen_vl_utils`` fails."""
    if fps <= 0 or min_frames < 1 or max_frames < min_frames or frame_factor < 1:
        raise ValueError(
            f"need fps > 0 and 1 <= min_frames <= max_frames, got fps={fps}, "
            f"min_frames={min_frames}, max_frames={max_frames}, frame_factor={frame_factor}"
        )
    stop = info.duration if end is None else min(end, info.duration)
    if not 0 <= start < stop:
        raise ValueError(
            f"window [{start}, {stop}] is empty or outside the video (0 to {info.duration:.3f} s)"
        )
    first = math.ceil(start * info.fps)
    last = info.num_frames - 1 if end is None else min(info.num_frames - 1, math.floor(stop * info.fps))
    if first > last:
        raise ValueError(f"window [{start}, {stop}] holds no frame of the video ({info.fps:g} fps)")
    available = last - first + 1
    f = frame_factor
    n = min(max(available / info.fps * fps, math.ceil(min_frames / f) * f), max_frames // f * f)
    n = max(f, math.floor(min(n, available) / f) * f)
    return torch.linspace(first, last, n).round().long().tolist()


def decode_frames(backend: VideoBackend, path: str, indices: list[int], info: VideoInfo) -> Frames:
    """Decode ``indices`` and attach their times; a failing or short decode is a ``VideoError``."""
    try:
        pixels = backend.decode(path, indices)
    except VideoError:
        raise
    except Exception as e:  # a library's own error: re-raise naming the file and the backend
        raise VideoError(f"{path}: {backend.name} could not decode frames {indices[:8]}...: {e}") from e
    if pixels.dim() != 4 or pixels.shape[0] != len(indices) or pixels.shape[-1] != 3:
        got = list(pixels.shape)
        raise VideoError(f"{path}: {backend.name} returned {got} for {len(indices)} frames, not [F, H, W, 3]")
    idx = torch.tensor(indices, dtype=torch.long)
    return Frames(pixels, idx.double() / info.fps, idx, info)


def select_backend(registry: Registry[type[VideoBackend]], name: str = "auto") -> VideoBackend:
    """The named backend, or with ``auto`` every available one in priority order (decord,
    torchcodec, PyAV) behind one ``Fallback``: a file one of them cannot read goes to the next.
    A named backend that cannot run here is an error saying why."""
    if name == "auto":
        usable = [c for c in registry.entries() if c.obj.unavailable_reason() is None]
        if not usable:
            why = {e.name: e.obj.unavailable_reason() for e in registry.entries()}
            raise VideoError(f"no video backend can run here: {why or 'none registered'}")
        return Fallback([e.obj() for e in sorted(usable, key=lambda e: -e.obj.priority)])
    cls = registry.get(name)
    reason = cls.unavailable_reason()
    if reason:
        usable = [e.name for e in registry.entries() if e.obj.unavailable_reason() is None]
        raise VideoError(
            f"video backend {name!r} cannot run here: {reason}; available: {', '.join(usable) or 'none'}"
        )
    return cls()


class Fallback(VideoBackend):
    """Several backends as one (``backend: auto``): each file is probed by the first that can read
    it, and decoded by the same one, or by the next that can if it fails; a file is bad only when
    every backend fails, and the error gives the plainest cause any of them found. ``fallbacks``
    counts the files a later backend read; ``used(path)`` names the backend that read ``path``."""

    name = "auto"

    def __init__(self, members: list[VideoBackend]):
        super().__init__()
        self.members, self.fallbacks = members, 0
        self._chosen: OrderedDict[str, VideoBackend] = OrderedDict()  # the newest 4096 files
        self._lock = threading.Lock()  # feeds decode in threads

    def used(self, path: str) -> str | None:
        with self._lock:
            member = self._chosen.get(path)
        return None if member is None else member.name

    def probe(self, path: str) -> VideoInfo:
        return self._first(path, self.members, lambda m: m.probe(path))

    def decode(self, path: str, indices: list[int]) -> torch.Tensor:
        with self._lock:
            first = self._chosen.get(path, self.members[0])
        order = [first] + [m for m in self.members if m is not first]

        def decode(m: VideoBackend) -> torch.Tensor:
            if m is not first and max(indices) >= m.probe(path).num_frames:
                raise VideoError(f"{path}: {m.name} counts fewer frames than {max(indices) + 1}")
            return m.decode(path, indices)

        return self._first(path, order, decode)

    def _first(self, path: str, order: list[VideoBackend], call: Any) -> Any:
        errors: list[tuple[str, str]] = []
        for m in order:
            try:
                out = call(m)
            except Exception as e:  # a library's own error: the next backend may read the file
                errors.append((m.name, str(e)))
                continue
            with self._lock:
                if m is not self.members[0] and self._chosen.get(path) is not m:
                    self.fallbacks += 1
                self._chosen[path] = m
                self._chosen.move_to_end(path)
                while len(self._chosen) > 4096:
                    self._chosen.popitem(last=False)
            return out
        raise VideoError(unreadable(path, errors))


#: library texts that say nothing to a user (C++ assertions, "Error reading FILE...")
_OPAQUE = re.compile(r"Check failed|\.cc:\d+|Error reading |DECORDError|\bcore dumped\b")


def plain_cause(path: str, text: str) -> str:
    """A library's error text in plain words: without the file name, errno codes, C++ source
    locations; FFmpeg's last log line (e.g. "moov atom not found") first when it has one."""
    text = text.replace(f"{path}: ", "").replace(f": '{path}'", "").replace(f"'{path}'", "the file")
    text = re.sub(r"^not a readable video \(\w+: (.*)\)$", r"\1", text.strip(), flags=re.S)
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+\.cc:\d+: ", "", text)
    main, _, log = text.partition("; last error log: ")
    if log:
        cause = re.sub(r"^\[[^]]*\] ", "", log).strip()  # "[mov,mp4,...] moov atom not found"
        main = f"{cause} ({main.strip()})"
    return main.strip().splitlines()[0] if main.strip() else "unknown error"


def unreadable(path: str, errors: list[tuple[str, str]]) -> str:
    """One line for a file no backend could read: the plainest cause, and who tried."""
    causes = [plain_cause(path, text) for _, text in errors]
    best = next((c for c in causes if not _OPAQUE.search(c)), causes[0] if causes else "no backend tried")
    tried = ", ".join(name for name, _ in errors)
    return f"{path}: not a readable video: {best} (tried {tried})"


def within(seconds: float, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or a ``VideoError`` naming ``what`` when it takes longer than ``seconds`` (0: no
    limit). It runs in a daemon thread, abandoned on time-out: a decoder hung inside a C call
    cannot be stopped, but it no longer stops the run (or its exit)."""
    if seconds <= 0:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="vidrl-decode-limit", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise VideoError(
            f"{what}: decoding took longer than {seconds:g} s (data.decode_timeout); left behind"
        )
    if "error" in box:
        raise box["error"]
    return box["out"]


def read_video(backend: VideoBackend, path: str, timestamps: bool = False, **plan: Any) -> Frames:
    """Probe, plan (``plan_frames`` options) and decode only the planned frames; with
    ``timestamps`` each frame shows its time (``burn_timestamps``)."""
    info = backend.probe(path)
    frames = decode_frames(backend, path, plan_frames(info, **plan), info)
    return burn_timestamps(frames) if timestamps else frames


def burn_timestamps(frames: Frames, fmt: str = "{:.2f}s") -> Frames:
    """Draw each frame's time stamp ("3.25s") in its top-left corner, white on a black box, so a
    model can read times off the pixels (the frame toolbox does this). Returns new frames."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    out = []
    for pixels, t in zip(frames.pixels, frames.times.tolist(), strict=True):
        img = Image.fromarray(pixels.numpy())
        draw = ImageDraw.Draw(img)
        text = fmt.format(t)
        left, top, right, bottom = draw.textbbox((2, 1), text, font=font)
        draw.rectangle((0, 0, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text((2, 1), text, fill=(255, 255, 255), font=font)
        out.append(torch.from_numpy(np.asarray(img).copy()))
    return Frames(torch.stack(out) if out else frames.pixels, frames.times, frames.indices, frames.info)
