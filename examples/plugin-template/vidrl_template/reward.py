"""Reward ``concise``: shorter responses score higher."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import vidrl


class Concise(vidrl.Reward):
    """1 − min(1, words / max_words): shorter responses score higher, an empty one scores 1."""

    name = "concise"

    @dataclass(frozen=True)
    class Config:
        max_words: int = 100

        def __post_init__(self) -> None:
            if self.max_words < 1:
                raise ValueError(f"max_words must be >= 1, got {self.max_words!r}")

    def __call__(self, responses: Sequence[str], samples: Sequence[vidrl.Sample]) -> list[float]:
        return [1.0 - min(1.0, len(r.split()) / self.config.max_words) for r in responses]
