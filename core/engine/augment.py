"""The augment phase of an RL step (DeepVideo-R1, arXiv:2506.07464; docs/algorithms.md,
'Difficulty-aware augmentation — order of a step'): roll out G on the original prompts, let the
augmenters see the rewards and replace some prompts, roll out G on the replacements, and train on
the batch actually used.

Shapes: P prompts, G rollouts each, B = P·G. The final generation re-prepares all P prompts (the
replaced ones changed their text or frames) and stitches response ids: response ids do not depend
on how the prompts were padded, so the untouched prompts keep their first roll-out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from vidrl.engine.checks import check_augmented
from vidrl.engine.rollout import decode, repeat_batch, rollout
from vidrl.engine.scoring import score
from vidrl.plugin.components import Augmenter, Reward, RolloutBackend
from vidrl.types import Augmentation, Augmented, AugmentInput, Frames, Generation, Sample, Sampling, Scores

Prepare = Callable[[Sequence[Sample], Sequence[Frames | None]], Any]


@dataclass
class Rollouts:
    """One roll-out of P prompts: the generation [B, ...], texts [B], samples [B] (each prompt's
    repeated G times) and scores."""

    gen: Generation
    texts: list[str]
    samples: list[Sample]
    scores: Scores


def roll(
    backend: RolloutBackend, tokenizer: Any, rewards: Sequence[tuple[str, float, Reward]], batch: Any,
    samples: Sequence[Sample], g: int, sampling: Sampling, eos_id: int,
) -> Rollouts:  # fmt: skip
    """G responses per prompt of a prepared batch, decoded and scored."""
    gen = rollout(backend, batch, g, sampling, eos_id, tokenizer.pad_token_id)
    texts = decode(tokenizer, gen)
    rep = [s for s in samples for _ in range(g)]
    return Rollouts(gen, texts, rep, score(rewards, texts, rep, gen.response_mask.sum(1).tolist()))


def zero_std_share(total: torch.Tensor, g: int) -> float:
    """Share of groups (consecutive blocks of g) whose rewards are all equal."""
    groups = total.view(-1, g)
    return float((groups.amax(1) == groups.amin(1)).float().mean())


def regroup(picks: Sequence[tuple[Rollouts, int]], prompt: Any, g: int, pad_id: int) -> Rollouts:
    """The roll-outs of the groups picked, in order: the k-th (r, p) gives group p of roll-out r
    (rows p·G … p·G + G − 1). ``prompt`` is the picked groups' prompts prepared again as one batch
    (response ids do not depend on how prompts were padded); response ids are right-padded with
    ``pad_id`` to the widest of the picks, the mask with 0."""
    rows = [(r, p * g + j) for r, p in picks for j in range(g)]
    width = max(r.gen.response_ids.shape[1] for r, _ in picks)

    def column(get: Callable[[Rollouts], torch.Tensor], value: int) -> torch.Tensor:
        return torch.stack([torch.nn.functional.pad(get(r)[i], (0, width - get(r).shape[1]), value=value)
                            for r, i in rows])  # fmt: skip

    ids = column(lambda r: r.gen.response_ids, pad_id)
    mask = column(lambda r: r.gen.response_mask, 0)
    names = picks[0][0].scores.per_reward
    total = torch.stack([r.scores.total[i] for r, i in rows])
    per = {name: torch.stack([r.scores.per_reward[name][i] for r, i in rows]) for name in names}
    gen = Generation(repeat_batch(prompt, g), ids, mask, group_size=g)
    return Rollouts(gen, [r.texts[i] for r, i in rows], [r.samples[i] for r, i in rows], Scores(total, per))


def merge(
    first: Rollouts, second: Rollouts, replaced: list[int], prompt: Any, g: int, pad_id: int
) -> Rollouts:
    """The roll-outs used for training: prompt p's G rows from ``second`` when p is the k-th
    entry of ``replaced``, else from ``first``; ``prompt`` is every final prompt, prepared."""
    picks = [
        (second, replaced.index(p)) if p in replaced else (first, p) for p in range(len(first.texts) // g)
    ]
    return regroup(picks, prompt, g, pad_id)


def _marked(augmented: Augmented, by: str) -> Augmented:
    """``augmented`` with an ``Augmentation`` stashed on its sample (if its augmenter did not stash
    one: from its legacy ``metadata["augment"]``), and, for plugins written before the stash,
    ``metadata["augment"]`` holding the record (deprecated)."""
    s = augmented.sample
    done = s.extra(Augmentation)
    if done is None:
        legacy = s.metadata.get("augment", {})
        done = Augmentation(by, dict(legacy) if isinstance(legacy, Mapping) else {"value": legacy})
    sample = replace(s, metadata={**s.metadata, "augment": dict(done.record)}).with_extra(done)
    return Augmented(sample, augmented.clip)


def augment_step(
    augmenters: Sequence[Augmenter],
    first: Rollouts,
    clips: Sequence[Frames | None],
    prepare: Prepare,
    roll_prompts: Callable[[Any, Sequence[Sample]], Rollouts],
    g: int,
    pad_id: int,
) -> tuple[Rollouts, dict[str, float]]:
    """Run the augmenters on the first roll-out (each sees the original prompts; a later one's
    replacement of the same prompt wins), roll out the replacements, and return the roll-outs to
    train on with ``aug/replaced_frac``, ``aug/zero_std_before``, ``aug/zero_std_after`` and each
    augmenter's own metrics."""
    samples = first.samples[::g]
    groups = first.scores.total.view(-1, g)

    def regenerate(
        ss: Sequence[Sample], cs: Sequence[Frames | None]
    ) -> tuple[list[list[str]], list[list[float]]]:
        r = roll_prompts(prepare(ss, cs), ss)
        return [r.texts[i : i + g] for i in range(0, len(r.texts), g)], r.scores.total.view(-1, g).tolist()

    texts = [first.texts[i : i + g] for i in range(0, len(first.texts), g)]
    inp = AugmentInput(samples, list(clips), groups.mean(1).tolist(), texts, groups.tolist(), regenerate)
    replacements: dict[int, Augmented] = {}
    for aug in augmenters:
        replacements.update(
            {p: _marked(a, aug.name) for p, a in check_augmented(aug, aug(inp), len(samples)).items()}
        )
        aug.observe(samples, inp.group_means)
    used = first
    if replacements:
        replaced = sorted(replacements)
        new = [replacements[p] for p in replaced]
        second = roll_prompts(
            prepare([a.sample for a in new], [a.clip for a in new]), [a.sample for a in new]
        )
        final = [
            replacements.get(p, Augmented(s, c)) for p, (s, c) in enumerate(zip(samples, clips, strict=True))
        ]
        used = merge(
            first, second, replaced, prepare([a.sample for a in final], [a.clip for a in final]), g, pad_id
        )
    metrics = {
        "aug/replaced_frac": len(replacements) / len(samples),
        "aug/zero_std_before": zero_std_share(first.scores.total, g),
        "aug/zero_std_after": zero_std_share(used.scores.total, g),
    }
    for aug in augmenters:
        metrics.update(aug.metrics())
    return used, metrics
