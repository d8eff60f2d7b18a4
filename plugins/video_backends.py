"""Video decoding backends: decord (preferred), torchcodec (when installed, with the system FFmpeg
libraries it needs) and PyAV (the fallback). Each reads only the frames asked for and turns every
library error into a ``vidrl.VideoError`` naming the file."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os

import numpy as np
import torch

import vidrl


def _missing(module: str) -> str | None:
    return None if importlib.util.find_spec(module) is not None else f"{module} is not installed"


def _check_exists(path: str) -> None:
    if not os.path.isfile(path):
        raise vidrl.VideoError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise vidrl.VideoError(f"{path}: the file is empty")


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

        _check_exists(path)
        try:
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
    """PyAV (FFmpeg): decodes sequentially up to the last frame asked for."""

    name = "pyav"
    priority = 10

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _missing("av")

    def _open(self, path: str):
        import av

        _check_exists(path)
        try:
            container = av.open(path)
        except Exception as e:
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
        found: dict[int, np.ndarray] = {}
        with self._open(path) as container:
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if i in wanted:
                    found[i] = frame.to_ndarray(format="rgb24")
                if i >= wanted[-1]:
                    break
        missing = [i for i in wanted if i not in found]
        if missing:
            raise vidrl.VideoError(f"{path}: frames {missing[:8]} could not be decoded (truncated file?)")
        return torch.from_numpy(np.stack([found[i] for i in indices]))


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
