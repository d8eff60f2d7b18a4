"""Augmenter ``think_harder``: prompts the policy failed on come back asking for care."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import vidrl


class ThinkHarder(vidrl.Augmenter):
    """Each prompt whose group-mean reward is below ``threshold`` is re-asked with ``suffix``
    appended (its clip unchanged). Counts the prompts it rewrote: state that survives restarts."""

    name = "think_harder"

    @dataclass(frozen=True)
    class Config:
        threshold: float = 0.5
        suffix: str = " Look at every frame before you answer."

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.rewritten = 0

    def __call__(self, batch: vidrl.AugmentInput) -> dict[int, vidrl.Augmented]:
        c, out = self.config, {}
        for p, (sample, mean) in enumerate(zip(batch.samples, batch.group_means, strict=True)):
            if mean < c.threshold:
                harder = replace(sample, question=sample.question + c.suffix)
                out[p] = vidrl.Augmented(harder.with_extra(vidrl.Augmentation(self.name)), batch.clips[p])
        self.rewritten += len(out)
        return out

    def metrics(self) -> dict[str, float]:
        return {"think_harder/rewritten": float(self.rewritten)}

    def state_dict(self) -> dict[str, Any]:
        return {"rewritten": self.rewritten}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rewritten = int(state["rewritten"])
