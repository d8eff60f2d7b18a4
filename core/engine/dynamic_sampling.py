"""Dynamic sampling (DAPO, arXiv:2503.14476, §3.2; docs/algorithms.md, 'DAPO'): a group whose
scored rewards are all equal gets advantage 0 and teaches nothing, so the step drops it and refills
the batch with the informative groups of further prompts, rolled out with the current policy,
until it holds P informative groups or ``max_draws`` prompt batches have been rolled out. Any
estimator and loss can switch it on (rl option ``dynamic_sampling``).

When the cap is reached first, the batch is completed with dropped groups, in the order drawn, so
that every step trains on P·G roll-outs on every rank (verl raises instead; the metric
``dynamic/filled_frac`` says how often this happens). Shapes: P prompts, G roll-outs each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vidrl import ops
from vidrl.engine.augment import Prepare, Rollouts, regroup
from vidrl.types import Frames, Sample, Scores

#: ``draw()`` → (samples [P], clips [P]): the next prompt batch of the step's feed
Draw = Callable[[], tuple[list[Sample], list[Frames | None]]]
#: ``roll_prompts(prompt_batch, samples)``: G roll-outs of each prompt, decoded and scored
RollPrompts = Callable[[Any, Sequence[Sample]], Rollouts]


def informative(scores: Scores, g: int) -> list[bool]:
    """[P] whether each group (G consecutive roll-outs) has two scored rewards that differ; an
    unscored roll-out (no reward scored it) counts in no group's spread."""
    r = scores.for_estimator().double()
    groups = r.numel() // g
    _, _, _, zero_std = ops.group_stats(r, torch.arange(r.numel()) // g, groups)
    return (~zero_std).tolist()


def refill(
    first: Rollouts, clips: Sequence[Frames | None], draw: Draw, roll_prompts: RollPrompts, prepare: Prepare,
    g: int, max_draws: int, pad_id: int,
) -> tuple[Rollouts, dict[str, float]]:  # fmt: skip
    """The roll-outs to train on: the informative groups of ``first`` (P prompts with their
    ``clips``), then of further batches from ``draw``, the first P of them (dropped groups fill
    the rest when ``max_draws`` batches, ``first`` included, give fewer). Metrics:
    ``dynamic/batches`` (prompt batches rolled out), ``dynamic/informative_frac`` (of the first
    batch's groups), ``dynamic/filled_frac`` (of the batch trained on: uninformative groups)."""
    if max_draws < 1:
        raise ValueError(f"max_draws must be >= 1 (prompt batches rolled out per step), got {max_draws}")
    size = len(first.texts) // g
    keep: list[tuple[Rollouts, int, Frames | None]] = []
    spare: list[tuple[Rollouts, int, Frames | None]] = []

    def sort(r: Rollouts, cs: Sequence[Frames | None]) -> None:
        for p, ok in enumerate(informative(r.scores, g)):
            (keep if ok else spare).append((r, p, cs[p]))

    sort(first, clips)
    metrics = {"dynamic/informative_frac": len(keep) / size}
    draws = 1
    while len(keep) < size and draws < max_draws:
        samples, cs = draw()
        sort(roll_prompts(prepare(samples, cs), samples), cs)
        draws += 1
    filled = max(0, size - len(keep))
    metrics.update({"dynamic/batches": float(draws), "dynamic/filled_frac": filled / size})
    if len(keep) == size and keep[-1][0] is first:  # nothing dropped: the first batch as it is
        return first, metrics
    picks = (keep + spare[:filled])[:size]
    prompt = prepare([r.samples[p * g] for r, p, _ in picks], [c for _, _, c in picks])
    return regroup([(r, p) for r, p, _ in picks], prompt, g, pad_id), metrics
