"""Video decoding backends: decord (preferred), torchcodec (when installed, with the system FFmpeg
libraries it needs) and PyAV (the fallback). Each reads only the frames asked for and turns every
library error into a ``vidrl.VideoError`` naming the file."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import stat
import sys
import threading
from collections.abc import Iterator

import numpy as np
import torch

import vidrl


def _missing(module: str) -> str | None:
    return None if importlib.util.find_spec(module) is not None else f"{module} is not installed"


def _check_exists(path: str) -> None:
    """A regular, non-empty file; otherwise a ``VideoError`` saying what is there instead."""
    if not os.path.exists(path):
        raise vidrl.VideoError(f"{path}: no such file")
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise vidrl.VideoError(f"{path}: is a directory, not a video file")
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise vidrl.VideoError(f"{path}: is {kind}, not a regular video file")
    if os.path.getsize(path) == 0:
        raise vidrl.VideoError(f"{path}: the file is empty")


_STDERR, _AV_LOG = threading.Lock(), threading.Lock()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Swallow what C libraries print to the process's stderr meanwhile (decord's log lines), unless
    ``VIDRL_VERBOSE`` is set (``vidrl --verbose``). The library's exception keeps the cause."""
    if os.environ.get("VIDRL_VERBOSE"):
        yield
        return
    with _STDERR, open(os.devnull, "wb") as null:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _checked_info(path: str, num_frames: int, fps: float, width: int, height: int) -> vidrl.VideoInfo:
    if num_frames <= 0 or not fps or fps <= 0 or width <= 0 or height <= 0:
        raise vidrl.VideoError(
            f"{path}: no decodable frames (frames={num_frames}, fps={fps}, size={width}x{height})"
        )
    return vidrl.VideoInfo(num_frames=num_frames, fps=float(fps), width=width, height=height)


class Decord(vidrl.VideoBackend):
    """decord's VideoReader: random access by frame index."""

    name = "decord"
    priority = 20

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _missing("decord")

    def _reader(self, path: str):
        import decord

        quiet = not os.environ.get("VIDRL_VERBOSE")
        decord.logging.set_level(decord.logging.QUIET if quiet else decord.logging.ERROR)  # its FFmpeg's too
        _check_exists(path)
        try:
            with _quiet_stderr():  # decord's own "ERROR opening" line
                return decord.VideoReader(path, num_threads=1)
        except Exception as e:  # decord raises its own DECORDError for unreadable files
            raise vidrl.VideoError(f"{path}: not a readable video (decord: {str(e).splitlines()[0]})") from e

    def probe(self, path: str) -> vidrl.VideoInfo:
        vr = self._reader(path)
        n = len(vr)
        h, w = vr[0].shape[:2] if n else (0, 0)
        return _checked_info(path, n, vr.get_avg_fps(), w, h)

    def decode(self, path: str, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(self._reader(path).get_batch(indices).asnumpy())


class PyAV(vidrl.VideoBackend):
    """PyAV (FFmpeg). In a constant-frame-rate stream it seeks to a frame more than ``SEEK_GAP``
    frames past the last one decoded (to the keyframe before it, then decodes forward; a frame's
    index is its time × fps); otherwise, or when the stream's rate varies, it decodes
    sequentially (a frame's index is its decoding order)."""

    name = "pyav"
    priority = 10

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _missing("av")

    def _open(self, path: str):
        import av

        _check_exists(path)
        try:
            with _ffmpeg_errors():
                container = av.open(path)
        except Exception as e:  # its message ends with FFmpeg's last error line ("moov atom not found")
            raise vidrl.VideoError(f"{path}: not a readable video (PyAV: {e})") from e
        if not container.streams.video:
            container.close()
            raise vidrl.VideoError(f"{path}: has no video stream")
        return container

    def probe(self, path: str) -> vidrl.VideoInfo:
        with self._open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            n = stream.frames or sum(1 for _ in container.decode(stream))  # count when not in the header
            return _checked_info(path, n, fps, stream.codec_context.width, stream.codec_context.height)

    def decode(self, path: str, indices: list[int]) -> torch.Tensor:
        wanted = sorted(set(indices))
        with self._open(path) as container:
            stream = container.streams.video[0]
            constant = stream.average_rate and stream.guessed_rate == stream.average_rate
            found = _seeking(container, stream, wanted) if constant and stream.time_base else None
        if found is None:  # a varying rate, or frames without time stamps: by decoding order
            with self._open(path) as container:
                found = _sequential(container, container.streams.video[0], wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise vidrl.VideoError(f"{path}: frames {missing[:8]} could not be decoded (truncated file?)")
        return torch.from_numpy(np.stack([found[i] for i in indices]))


#: a wanted frame this far past the last decoded one is sought (x264's default keyframe interval)
SEEK_GAP = 250


def _sequential(container, stream, wanted: list[int]) -> dict[int, np.ndarray]:
    """The ``wanted`` frames (sorted indices in decoding order), decoding every frame up to the last."""
    found, keep = {}, set(wanted)
    for i, frame in enumerate(container.decode(stream)):
        if i in keep:
            found[i] = frame.to_ndarray(format="rgb24")
        if i >= wanted[-1]:
            break
    return found


def _seeking(container, stream, wanted: list[int]) -> dict[int, np.ndarray] | None:
    """The ``wanted`` frames of a constant-rate stream, by time (index = round(time × fps)):
    seeking to the keyframe before a frame more than ``SEEK_GAP`` past the last decoded one.
    None when a frame has no time stamp."""
    fps, start = float(stream.average_rate), stream.start_time or 0
    found, keep, frames, last = {}, set(wanted), None, -1
    for target in wanted:
        if target in found:
            continue
        if frames is None or target - last > SEEK_GAP:
            container.seek(start + int(target / fps / stream.time_base), stream=stream, backward=True)
            frames = container.decode(stream)
        for frame in frames:
            if frame.pts is None:
                return None
            last = round(float((frame.pts - start) * stream.time_base) * fps)
            if last in keep:
                found[last] = frame.to_ndarray(format="rgb24")
            if last >= target:
                break
    return found


@contextlib.contextmanager
def _ffmpeg_errors() -> Iterator[None]:
    """FFmpeg's error lines captured by PyAV (so that its exceptions carry the last one) instead
    of printed; printed as usual with ``VIDRL_VERBOSE``."""
    import av

    if os.environ.get("VIDRL_VERBOSE"):
        yield
        return
    with _AV_LOG:  # the level is global: threads opening files at once must not interleave it
        level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.logging.Capture():
                yield
        finally:
            av.logging.set_level(level)


@functools.cache
def _torchcodec_problem() -> str | None:
    if importlib.util.find_spec("torchcodec") is None:
        return "torchcodec is not installed"
    try:  # importing the decoders loads FFmpeg's shared libraries, which may be missing
        importlib.import_module("torchcodec.decoders")
    except (ImportError, OSError, RuntimeError) as e:
        return f"torchcodec cannot load FFmpeg: {str(e).splitlines()[0]}"
    return None


class TorchCodec(vidrl.VideoBackend):
    """torchcodec's VideoDecoder: random access by frame index, straight into torch tensors."""

    name = "torchcodec"
    priority = 15

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _torchcodec_problem()

    def _decoder(self, path: str):
        from torchcodec.decoders import VideoDecoder

        _check_exists(path)
        try:
            return VideoDecoder(path)
        except Exception as e:  # torchcodec raises RuntimeError/ValueError for unreadable files
            raise vidrl.VideoError(
                f"{path}: not a readable video (torchcodec: {str(e).splitlines()[0]})"
            ) from e

    def probe(self, path: str) -> vidrl.VideoInfo:
        m = self._decoder(path).metadata
        return _checked_info(path, m.num_frames or 0, m.average_fps or 0, m.width or 0, m.height or 0)

    def decode(self, path: str, indices: list[int]) -> torch.Tensor:
        return self._decoder(path).get_frames_at(indices).data.permute(0, 2, 3, 1).contiguous()


@vidrl.hookimpl
def register_video_backends(register):
    register(Decord)
    register(TorchCodec)
    register(PyAV)
