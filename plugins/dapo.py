"""DAPO's overlong reward shaping (arXiv 2503.14476, §3.4, "soft overlong punishment") as the
reward ``overlong``: a length penalty that starts ``buffer`` tokens before the generation budget
``max_length`` and grows linearly to −1 at it. DAPO's other parts are engine options of the rl
stage: ``dynamic_sampling`` (refill the batch with informative groups) and ``mask_truncated``
(overlong filtering); its clip-higher is ``ppo_clip``'s ``eps_high`` and its token-level loss
``ppo_clip``'s ``aggregation: token_mean`` (docs/algorithms.md, 'DAPO').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import vidrl


def overlong_penalty(length: int, max_length: int, buffer: int) -> float:
    """0 for length ≤ L_max − L_cache, ((L_max − L_cache) − length) / L_cache up to L_max, −1
    beyond it (the paper's R_length, L_max = ``max_length``, L_cache = ``buffer``)."""
    start = max_length - buffer
    if length <= start:
        return 0.0
    if length <= max_length:
        return (start - length) / buffer
    return -1.0


class Overlong(vidrl.Reward):
    """R_length(|y|) · ``factor`` per response, |y| its token count (the policy's own tokens, the
    end-of-turn token included, as verl counts them). ``max_length``: the generation budget
    (the rl stage's ``max_new_tokens``); ``buffer``: L_cache, the tokens before it where the
    penalty grows (the paper: 4096 of 20480); ``factor``: its weight at the budget (verl's
    ``penalty_factor``; the reward's own ``weight`` scales it too). Every task type."""

    name = "overlong"
    requires = frozenset({vidrl.Need.RESPONSE_LENGTHS})

    @dataclass(frozen=True)
    class Config:
        max_length: int
        buffer: int
        factor: float = 1.0

        def __post_init__(self) -> None:
            if not 0 < self.buffer <= self.max_length:
                raise ValueError(
                    f"overlong needs 0 < buffer <= max_length (the generation budget, the rl stage's "
                    f"max_new_tokens); got buffer {self.buffer}, max_length {self.max_length}"
                )
            if self.factor < 0:
                raise ValueError(f"factor must be >= 0, got {self.factor}")

    def __call__(
        self, responses: Sequence[str], samples: Sequence[vidrl.Sample], lengths: Sequence[int] = ()
    ) -> list[float]:
        """``lengths`` [n]: each response's token count (the engine passes them)."""
        c = self.config
        if len(lengths) != len(responses):
            raise ValueError(
                f"overlong needs one token count per response, got {len(lengths)} for {len(responses)}"
            )
        return [c.factor * overlong_penalty(n, c.max_length, c.buffer) for n in lengths]


@vidrl.hookimpl
def register_rewards(register):
    register(Overlong)
