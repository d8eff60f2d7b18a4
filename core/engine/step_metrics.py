"""What an RL step reports: its reward, advantage, length and learning-rate metrics, overall and
per task type, and its phases' times. Shapes: B roll-outs in groups of G consecutive rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vidrl.engine.augment import Rollouts
from vidrl.engine.evaluation import grade
from vidrl.types import Advantages, Sample, Scores

#: metrics combined over ranks otherwise than by their mean: the loss is each rank's share of the
#: step's loss (whole-step normalisers), so summed; extremes by their extreme; the feed's counts by
#: their largest (a resumed run restores the main rank's count on every rank). Others: averaged.
COMBINE = {
    "loss": sum,
    "response_length/min": min,
    "response_length/max": max,
    "data/skipped": max,
    "data/video_fallbacks": max,
}


def over_ranks(world: Any, metrics: dict[str, float]) -> dict[str, float]:
    """The step's metrics over every data-parallel rank (``world``, a ``Collective``): as
    ``COMBINE`` says, the others averaged over the ranks that report them (a task type only
    some ranks drew). Every rank must call it; one rank: ``metrics`` as they are."""
    if world.size == 1:
        return metrics
    parts = world.gather(metrics)
    keys = dict.fromkeys(k for part in parts for k in part)
    out = {}
    for k in keys:
        values = [part[k] for part in parts if k in part]
        out[k] = COMBINE[k](values) if k in COMBINE else sum(values) / len(values)
    return out


def task_metrics(
    samples: Sequence[Sample], texts: Sequence[str], scores: Scores, adv: Advantages, group_size: int
) -> dict[str, float]:
    """Per task type of the batch: ``task/<type>/reward`` (mean total reward), ``accuracy`` and/or
    ``miou`` (judged as in evaluation), ``zero_std_frac`` and ``weight`` (mean group weight of
    the estimator, e.g. DGRPO's difficulty weight); plus ``adv/weight_mean`` over all groups.
    Samples [B] come in groups of ``group_size`` consecutive rollouts of one prompt."""
    out = {"adv/weight_mean": float(adv.group_weights.float().mean())}
    for task in sorted({s.task_type for s in samples}):
        rows = [i for i, s in enumerate(samples) if s.task_type == task]
        groups = sorted({i // group_size for i in rows})
        judged = [grade(texts[i], samples[i]) for i in rows]
        out[f"task/{task}/reward"] = float(scores.total[rows].mean())
        for k, name in ((0, "accuracy"), (1, "miou")):
            values = [j[k] for j in judged if j[k] is not None]
            if values:
                out[f"task/{task}/{name}"] = sum(values) / len(values)
        out[f"task/{task}/zero_std_frac"] = float(adv.zero_std[groups].float().mean())
        out[f"task/{task}/weight"] = float(adv.group_weights[groups].float().mean())
    return out


def step_summary(used: Rollouts, adv: Advantages, g: int, lr: float) -> dict[str, float]:
    """The step's reward, advantage, length and learning-rate (``lr``) metrics, overall and per
    task, for the roll-outs trained on (G = ``g`` per group)."""
    scores, lengths = used.scores, used.gen.response_mask.sum(1).float()
    return {
        **scores.means(),
        "reward/unscored_frac": float((~scores.scored).float().mean()),
        **task_metrics(used.samples, used.texts, scores, adv, g),
        "reward/mean": float(scores.total.mean()),
        "adv/zero_std_frac": adv.zero_std_frac,
        "response_length/mean": float(lengths.mean()),
        "response_length/min": float(lengths.min()),
        "response_length/max": float(lengths.max()),
        "lr": lr,
    }


def phase_times(seconds: dict[str, float]) -> dict[str, float]:
    """``time/<phase>`` for each phase's seconds, and ``time/step``, their sum."""
    return {**{f"time/{k}": v for k, v in seconds.items()}, "time/step": sum(seconds.values())}
