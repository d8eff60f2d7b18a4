"""VerIPO's preference pairs, built within each group (the roll-outs of one prompt in one step).

Acceptable responses (every check passed) are the chosen ones, longest first (ties: sampling
order), reused in turn. Each response that fails a check becomes at most one pair's rejected:

- **consistency** pair: it failed the consistency check (its reasoning does not support its
  answer: a right answer reached by wrong reasoning, or the reverse);
- **penalty** pair: it failed another check (accuracy, repetition, length) but not consistency.

**Reflection** pairs (only with a judge): a wrong response's reasoning, then a self-correction,
then an acceptable response's reasoning and answer, as one response (``reflection_template``);
kept only if it passes every check, the judge's included; its rejected is the uncorrected wrong
response. At most ``max_per_group`` pairs of each kind per group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import vidrl

from .verifier import JudgeFn, Rollout, Verdict, VerifierConfig, split_response, verify

REFLECTION = (
    "{wrong_reasoning} That gives {wrong_answer}. Wait, that does not hold up; let me check again. "
    "{right_reasoning}"
)


@dataclass(frozen=True)
class PairConfig:
    """``max_per_group``: pairs of each kind per group; ``reflection``: build reflection pairs
    (they need a judge); ``reflection_template``: the chosen reflection's reasoning, from
    {wrong_reasoning}, {wrong_answer} and {right_reasoning}."""

    max_per_group: int = 2
    reflection: bool = True
    reflection_template: str = REFLECTION

    def __post_init__(self) -> None:
        if self.max_per_group < 0:
            raise ValueError(f"max_per_group must be >= 0, got {self.max_per_group}")
        missing = [k for k in ("{wrong_reasoning}", "{right_reasoning}") if k not in self.reflection_template]
        if missing:
            raise ValueError(f"reflection_template lacks {missing}")


@dataclass(frozen=True)
class Pair:
    """A preference pair of one group: its ``kind``, the texts, their verdicts, and the indices
    of the roll-outs they come from (a reflection's chosen comes from two)."""

    kind: str
    group: str
    chosen: str
    rejected: str
    chosen_verdict: Verdict
    rejected_verdict: Verdict
    chosen_from: tuple[int, ...]
    rejected_from: int


def acceptable(indices: Sequence[int], verdicts: Sequence[Verdict]) -> list[int]:
    """The passing roll-outs of a group, longest first (ties: sampling order)."""
    return sorted((i for i in indices if verdicts[i].passes), key=lambda i: (-verdicts[i].tokens, i))


def reflection_text(wrong: str, right: str, template: str) -> str:
    """A wrong attempt, a self-correction, and the right reasoning and answer, as one response."""
    w_reasoning, w_answer = split_response(wrong)
    r_reasoning, r_answer = split_response(right)
    fields = {"wrong_reasoning": w_reasoning, "wrong_answer": w_answer, "right_reasoning": r_reasoning}
    return f"<think>{template.format(**fields)}</think><answer>{r_answer}</answer>"


def reflections(
    indices: Sequence[int], rollouts: Sequence[Rollout], verdicts: Sequence[Verdict], config: PairConfig
) -> list[tuple[int, int, Rollout]]:
    """Reflection candidates of a group: (wrong index, right index, the composed roll-out), the
    wrong responses in order, each with the next acceptable one in turn."""
    good = acceptable(indices, verdicts)
    wrong = [i for i in indices if not verdicts[i].accurate][: config.max_per_group]
    if not good:
        return []
    out = []
    for k, w in enumerate(wrong):
        r = good[k % len(good)]
        text = reflection_text(rollouts[w].text, rollouts[r].text, config.reflection_template)
        tokens = rollouts[w].tokens + rollouts[r].tokens  # an estimate: the texts are not re-tokenised
        out.append((w, r, Rollout(rollouts[w].prompt, rollouts[w].group, text, tokens, False)))
    return out


def group_pairs(
    group: str,
    indices: Sequence[int],
    rollouts: Sequence[Rollout],
    verdicts: Sequence[Verdict],
    config: PairConfig,
) -> list[Pair]:
    """The penalty and consistency pairs of one group."""
    good = acceptable(indices, verdicts)
    if not good:
        return []
    used: dict[str, int] = defaultdict(int)
    out = []
    for i in indices:
        if verdicts[i].passes:
            continue
        kind = "consistency" if verdicts[i].consistent is False else "penalty"
        if used[kind] >= config.max_per_group:
            continue
        c = good[used[kind] % len(good)]
        used[kind] += 1
        out.append(Pair(kind, group, rollouts[c].text, rollouts[i].text, verdicts[c], verdicts[i], (c,), i))
    return out


def build_pairs(
    rollouts: Sequence[Rollout],
    verdicts: Sequence[Verdict],
    samples: dict[str, vidrl.Sample],
    judge: JudgeFn | None,
    verifier: VerifierConfig,
    config: PairConfig,
) -> list[Pair]:
    """Every pair of an iteration's roll-outs (``verdicts[i]`` judges ``rollouts[i]``); the
    reflection candidates of all groups are verified in one batch."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rollouts):
        groups[r.group].append(i)
    pairs = [p for g, idx in groups.items() for p in group_pairs(g, idx, rollouts, verdicts, config)]
    if judge is None or not config.reflection:
        return pairs
    candidates = [c for idx in groups.values() for c in reflections(idx, rollouts, verdicts, config)]
    checked = verify([c[2] for c in candidates], samples, judge, verifier)
    for (w, r, composed), verdict in zip(candidates, checked, strict=True):
        if verdict.passes:
            pairs.append(
                Pair(
                    "reflection",
                    composed.group,
                    composed.text,
                    rollouts[w].text,
                    verdict,
                    verdicts[w],
                    (w, r),
                    w,
                )
            )
    return pairs


def sample_row(sample: vidrl.Sample) -> dict[str, object]:
    """A sample as a data-set row (``vidrl.load_dataset`` reads it back)."""
    return {
        "id": sample.id, "question": sample.question, "answer": sample.answer, "task_type": sample.task_type,
        "video": sample.video, "images": list(sample.images), "options": list(sample.options),
        "span": None if sample.span is None else list(sample.span), "duration": sample.duration,
        "metadata": dict(sample.metadata),
    }  # fmt: skip


def pair_row(pair: Pair, sample: vidrl.Sample, n: int) -> dict[str, object]:
    """A pair as a data-set row for the ``dpo`` stage (``chosen`` / ``rejected`` columns) that also
    says why it exists: its kind, both verdicts, and the roll-outs it was built from."""
    return {
        **sample_row(sample),
        "id": f"{sample.id}#pair{n}",
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "pair_type": pair.kind,
        "group": pair.group,
        "chosen_from": list(pair.chosen_from),
        "rejected_from": pair.rejected_from,
        "chosen_verdict": pair.chosen_verdict.as_dict(),
        "rejected_verdict": pair.rejected_verdict.as_dict(),
    }
