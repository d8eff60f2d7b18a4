"""Feeding a training loop: endless shuffled batches of a data set (resumable, split across
data-parallel ranks) turned into model inputs, with decoded clips cached and bad videos either
raised or counted and skipped (``data.on_bad_row``)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidrl.config import DataConfig
from vidrl.data.datasets import Dataset
from vidrl.data.video import Fallback, VideoBackend, VideoError, read_video, within
from vidrl.models.inputs import (
    FITTED_FRAMES,
    FITTED_IMAGES,
    Geometry,
    fit_image,
    fit_pixels,
    prepare_batch,
    sample_images,
)
from vidrl.types import Frames, ImagePixels, Sample

log = logging.getLogger(__name__)


class SampleStream:
    """Indices of ``n`` samples in batches of ``batch_size`` for this rank, forever. Epoch e's order
    is a permutation seeded by (seed, e); each global batch of ``batch_size · world`` consecutive
    indices is split by rank, so every rank sees different samples and the union does not depend
    on the number of ranks. The position is two integers, saved in checkpoints."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if n < 1 or batch_size < 1 or not 0 <= rank < world:
            raise ValueError(
                f"need n >= 1, batch_size >= 1, 0 <= rank < world; got {n}, {batch_size}, {rank}"
            )
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.cursor = 0, 0

    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, k: int) -> list[int]:
        """The next ``k`` indices of the global order (wrapping into the next epoch)."""
        out: list[int] = []
        while len(out) < k:
            order = self._order(self.epoch)
            part = order[self.cursor : self.cursor + k - len(out)]
            out += part
            self.cursor += len(part)
            if self.cursor == self.n:
                self.epoch, self.cursor = self.epoch + 1, 0
        return out

    def next_indices(self) -> list[int]:
        """This rank's share [batch_size] of the next global batch."""
        b = self.batch_size
        return self.take(b * self.world)[self.rank * b : (self.rank + 1) * b]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])


class Clips:
    """Decoded, planned clips of a data set's videos (per ``DataConfig``), resized to the largest
    frames the pixel budget lets the model see (what ``prepare_batch`` would resize them to first)
    and LRU-cached: at most ``cache_clips`` clips and ``cache_mb`` MiB."""

    def __init__(self, dataset: Dataset, backend: VideoBackend, config: DataConfig):
        self.dataset, self.backend, self.config = dataset, backend, config
        self._cache: OrderedDict[str, Frames] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # feeds decode in threads

    def get(self, sample: Sample, geometry: Geometry) -> Frames | None:
        """The clip of ``sample`` (None without a video), planned with the processor's temporal
        patch and resized on its grid within the budget. Raises ``VideoError`` naming the row (a
        file no backend reads, or frames too elongated for any budget)."""
        if sample.video is None:
            return None
        key = sample.video if sample.segment is None else f"{sample.video}@{sample.segment}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        c = self.config
        path = str(self.dataset.path(sample.video))
        try:
            plan = {"fps": c.fps, "min_frames": c.min_frames, "max_frames": c.max_frames,
                    "frame_factor": geometry.temporal}  # fmt: skip
            if sample.segment is not None:
                plan.update(start=sample.segment[0], end=sample.segment[1])
            clip = within(c.decode_timeout, path, lambda: read_video(self.backend, path, **plan))
            clip = fit_pixels(clip, geometry, c.budget, path)
        except (VideoError, ValueError) as e:  # ValueError: a segment outside the video
            raise VideoError(f"sample {sample.id!r}: {e}") from None
        used = self.backend.used(path) if isinstance(self.backend, Fallback) else None
        if used is not None and used != self.backend.members[0].name:
            sample.metadata["video_backend"] = used  # read by a later backend than the preferred one
        with self._lock:
            if c.cache_clips and key not in self._cache:
                self._cache[key] = clip
                self._bytes += clip.pixels.nbytes
                while len(self._cache) > c.cache_clips or self._bytes > c.cache_mb * 2**20:
                    self._bytes -= self._cache.popitem(last=False)[1].pixels.nbytes
        return clip

    def images(self, sample: Sample, geometry: Geometry) -> ImagePixels | None:
        """The images of ``sample`` (None without any), each fitted on the processor's grid within
        the budget. Raises ``VideoError`` naming the row and the file when one does not read."""
        if not sample.images:
            return None
        from PIL import Image, UnidentifiedImageError

        out = []
        for name in sample.images:
            path = self.dataset.path(name)
            try:
                with Image.open(path) as img:
                    pixels = torch.from_numpy(np.asarray(img.convert("RGB")).copy())
            except (OSError, UnidentifiedImageError) as e:
                raise VideoError(f"sample {sample.id!r}: image {name!r} does not read: {e}") from None
            out.append(fit_image(pixels, geometry, self.config.budget, str(path)))
        return ImagePixels(tuple(out))

    def load(self, sample: Sample, geometry: Geometry) -> tuple[Sample, Frames | None]:
        """(``sample`` with its images stashed as ``ImagePixels`` when it has any, its clip)."""
        clip, images = self.get(sample, geometry), self.images(sample, geometry)
        return (sample if images is None else sample.with_extra(images)), clip


@dataclass(frozen=True)
class Drawn:
    """A batch drawn from the stream: samples [P], their clips [P] (None: no video), and the
    feed's position after it (``PromptFeed.state_dict``)."""

    samples: list[Sample]
    clips: list[Frames | None]
    position: dict[str, int]


class PromptFeed:
    """Batches of (samples, processor batch) drawn from a ``SampleStream``. With ``on_bad_row:
    skip`` a sample whose video fails to decode is logged, counted in ``skipped`` and replaced
    by the next index of the stream; otherwise the ``VideoError`` propagates (at the draw of the
    batch that holds the sample).

    With ``workers`` ≥ 1, clips are decoded by that many threads, and the next batch's while the
    current step trains (prefetch); the samples, their order and the resume position do not
    depend on ``workers``. Threads, not processes: the decoders (decord, PyAV, torchcodec) and
    torch's resizing release the GIL, a decoded clip is not copied between processes, nothing
    forks after CUDA starts, and the clip cache is shared."""

    def __init__(
        self, dataset: Dataset, stream: SampleStream, clips: Clips, processor: Any, config: DataConfig,
        device: torch.device | str = "cpu", workers: int = 0,
    ):  # fmt: skip
        self.dataset, self.stream, self.clips = dataset, stream, clips
        self.processor, self.config, self.device = processor, config, device
        self.geometry = Geometry.of(processor)
        self._skipped = 0  # counted by the drawing thread, ahead of the batches handed out
        self._pool = ThreadPoolExecutor(workers, "vidrl-decode") if workers else None
        self._ahead = ThreadPoolExecutor(1, "vidrl-prefetch") if workers else None
        self._next: Future[Drawn] | None = None
        self._handed = {**stream.state_dict(), "skipped": 0}  # the position after the last batch handed out

    @property
    def fallbacks(self) -> int:
        """Video files a later backend read because the preferred one could not (``backend: auto``)."""
        return int(getattr(self.clips.backend, "fallbacks", 0))

    @property
    def skipped(self) -> int:
        """Samples skipped so far in the batches handed out."""
        return int(self._handed["skipped"])

    def state_dict(self) -> dict[str, int]:
        """The position after the last batch handed out (a prefetched one is drawn again on resume)."""
        return dict(self._handed)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._discard()
        self.stream.load_state_dict(state)
        self._skipped = int(state.get("skipped", 0))
        self._handed = {**self.stream.state_dict(), "skipped": self._skipped}

    def next(self) -> tuple[list[Sample], Any]:
        """The next batch: (samples [P], processor batch)."""
        samples, clips = self.draw()
        return samples, self.batch(samples, clips)

    def draw(self) -> tuple[list[Sample], list[Frames | None]]:
        """The next samples [P] and their decoded clips, not yet prepared."""
        ahead, self._next = self._next, None
        drawn = ahead.result() if ahead is not None else self._draw()
        self._next = self._ahead.submit(self._draw) if self._ahead is not None else None
        self._handed = drawn.position
        return drawn.samples, drawn.clips

    def close(self) -> None:
        """Stop prefetching and end the threads (a drawn-ahead batch is dropped)."""
        self._discard()
        for pool in (self._ahead, self._pool):
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _discard(self) -> None:
        """Drop a prefetched batch (waiting for its thread, whose error is then no batch's)."""
        if self._next is not None and not self._next.cancel():
            self._next.exception()
        self._next = None

    def _draw(self) -> Drawn:
        """This rank's next samples and clips, in the stream's order: a round decodes every pending
        sample (in parallel), and each sample that fails is replaced by the stream's next index,
        decoded in the next round (the order a serial loop gives)."""
        samples, clips, pending = [], [], self.stream.next_indices()
        while pending:
            rows = [self.dataset[i] for i in pending]
            pending = []
            for loaded in self._decode(rows):
                if isinstance(loaded, VideoError):
                    pending += self._skip(loaded)
                    continue
                samples.append(loaded[0])
                clips.append(loaded[1])
        return Drawn(samples, clips, {**self.stream.state_dict(), "skipped": self._skipped})

    def _decode(self, rows: Sequence[Sample]) -> list[tuple[Sample, Frames | None] | VideoError]:
        def get(sample: Sample) -> tuple[Sample, Frames | None] | VideoError:
            try:
                return self.clips.load(sample, self.geometry)
            except VideoError as e:
                return e

        return list(self._pool.map(get, rows)) if self._pool is not None else [get(s) for s in rows]

    def _skip(self, error: VideoError) -> list[int]:
        """A replacement index for a sample whose video does not decode (``on_bad_row: skip``)."""
        if self.config.on_bad_row != "skip":
            raise error
        self._skipped += 1
        log.warning("skipping a sample whose video does not decode: %s", error)
        if self._skipped > 10 * len(self.dataset):
            raise VideoError("no video of the data set decodes") from error
        return self.stream.take(1)[:1]

    def batch(self, samples: Sequence[Sample], clips: Sequence[Frames | None]) -> Any:
        batch, fitted = prepare_batch(self.processor, samples, clips, self.config.budget, self.config.system)
        batch = batch.to(self.device)
        batch[FITTED_FRAMES] = fitted  # for roll-out backends that take frames (``RolloutRequest``)
        batch[FITTED_IMAGES] = [sample_images(s) for s in samples]
        return batch
