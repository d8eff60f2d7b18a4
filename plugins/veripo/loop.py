"""The ``veripo`` loop stage: for each of ``iterations``: GRPO → verify its roll-outs → DPO on
the verified pairs, the next GRPO pruning easy prompts (VerIPO, arXiv:2505.19000; docs/algorithms.md,
'VerIPO — specification').

Phases (``StageContext.run_phase``; 3 per iteration): ``grpo<k>`` runs the inner RL stage on the
iteration's prompt pool and records every roll-out; ``verify<k>`` (main process) checks them,
builds the pairs and the next pool; ``dpo<k>`` runs the inner DPO stage on the pairs, against
the policy at the end of ``grpo<k>``. GRPO and DPO phases end in checkpoints (resumable in the
middle: a crash inside a phase resumes from its last step checkpoint). Files, under
``<run>/veripo/iter-<k>/``: ``rollouts-<rank>.jsonl``, ``verdicts.jsonl``, ``pairs.jsonl`` (a
data set: the ``dpo`` stage reads it), ``prompts-next.json`` (kept, dropped and easy prompt ids).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vidrl

from .pairs import PairConfig, build_pairs, pair_row
from .verifier import Rollout, VerifierConfig, verdict_metrics, verify

log = logging.getLogger(__name__)
PAIR_KINDS = ("penalty", "consistency", "reflection")


def prune(
    pool: list[str], accuracy: dict[str, float], share: float, seed: int
) -> tuple[list[str], list[str]]:
    """(kept, dropped): drop round(``share`` × #easy) prompts, drawn with ``seed``, among the
    easy ones (group-mean accuracy 1); never the whole pool. Kept keeps ``pool`` 's order."""
    easy = [p for p in pool if accuracy.get(p) == 1.0]
    n = max(0, min(math.floor(share * len(easy) + 0.5), len(pool) - 1))
    dropped = set(random.Random(seed).sample(easy, n))
    return [p for p in pool if p not in dropped], sorted(dropped)


def group_accuracy(rollouts: list[Rollout], accurate: list[bool]) -> dict[str, float]:
    """Each prompt's mean accuracy over its roll-outs of the iteration."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for r, ok in zip(rollouts, accurate, strict=True):
        hits[r.prompt].append(ok)
    return {p: sum(v) / len(v) for p, v in hits.items()}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """All of ``rows`` or nothing: written aside, then renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


class VerIPO(vidrl.Stage):
    """Options: ``iterations``; ``grpo`` and ``dpo``, the inner stages (any stage with a
    ``split`` option; defaults ``rl`` and ``dpo`` with their defaults); ``judge`` (a
    ``vidrl.Judge``; none: the consistency check is skipped, with a warning and the metric
    ``veripo/judge_skipped``); ``verifier`` thresholds; ``pairs``; ``prune_share`` of easy
    prompts dropped from the next GRPO pool."""

    name = "veripo"

    @dataclass(frozen=True)
    class Config:
        iterations: int = 2
        grpo: vidrl.ComponentSpec = field(default=vidrl.ComponentSpec("rl"), metadata={"kind": "stage"})
        dpo: vidrl.ComponentSpec = field(default=vidrl.ComponentSpec("dpo"), metadata={"kind": "stage"})
        judge: vidrl.ComponentSpec | None = field(default=None, metadata={"kind": "judge"})
        verifier: VerifierConfig = VerifierConfig()
        pairs: PairConfig = PairConfig()
        prune_share: float = 0.8

        def __post_init__(self) -> None:
            if self.iterations < 1 or not 0 <= self.prune_share <= 1:
                raise ValueError(f"need iterations >= 1 and prune_share in [0, 1]; got {self}")

    def check(self, config: vidrl.RunConfig, session: vidrl.Session | None = None) -> list[str]:
        if session is None:
            return [
                f"{key}: required by the veripo stage's GRPO phases"
                for key in vidrl.algorithm_missing(config)
            ]
        out = []
        for role in ("grpo", "dpo"):  # what the inner stages would refuse, before anything loads
            spec = getattr(self.config, role)
            inner = session.create("stage", spec.name, spec.options)
            out += [f"{role} ({spec.name}): {e}" for e in vidrl.check_stage(inner, config, session)]
        return out

    def run(self, context: vidrl.StageContext) -> None:
        c = self.config
        judge = None if c.judge is None else context.session.create("judge", c.judge.name, c.judge.options)
        if judge is None:
            log.warning(
                "veripo: no judge configured; the consistency check is skipped (veripo/judge_skipped)"
            )
        check_unique_ids(context.dataset("train"))
        for k in range(c.iterations):
            pool = self.pool(context, k)
            grpo = self.inner(context, c.grpo, pool)
            context.run_phase(3 * k, f"grpo{k}", functools.partial(self.grpo, context, grpo, k))
            verify_k = functools.partial(self.verify, context, k, pool, judge)
            context.run_phase(
                3 * k + 1, f"verify{k}", lambda f=verify_k: context.on_main(f), checkpoint=False
            )
            context.run_phase(3 * k + 2, f"dpo{k}", functools.partial(self.preference, context, k))

    # -- phases -----------------------------------------------------------------------------

    def grpo(self, context: vidrl.StageContext, stage: vidrl.Stage, k: int) -> None:
        """Run the inner RL stage, appending every roll-out to ``rollouts-<rank>.jsonl``."""
        out = self.directory(context, k)
        out.mkdir(parents=True, exist_ok=True)
        rollouts = vidrl.JsonlLog(out / f"rollouts-{context.state.rank}.jsonl")
        rollouts.truncate(context.state.global_step)  # resumed: drop what came after the checkpoint
        with context.session.subscribed(RolloutRecorder(rollouts), name="veripo-rollouts"):
            stage.run(context)

    def verify(self, context: vidrl.StageContext, k: int, pool: str, judge: vidrl.Judge | None) -> None:
        """Check the roll-outs, write verdicts and pairs, choose the next pool, log the metrics."""
        c, out = self.config, self.directory(context, k)
        rows = [r for f in sorted(out.glob("rollouts-*.jsonl")) for r in vidrl.JsonlLog(f).read()]
        rollouts = [Rollout(r["prompt"], r["group"], r["text"], r["tokens"], r["truncated"]) for r in rows]
        samples = {s.id: s for s in context.dataset("train").samples}
        judge_fn = None if judge is None else with_progress(judge, context)
        verdicts = verify(rollouts, samples, judge_fn, c.verifier)
        pairs = build_pairs(rollouts, verdicts, samples, judge_fn, c.verifier, c.pairs)
        if judge is not None:
            judge.close()
        _write_jsonl(
            out / "verdicts.jsonl",
            [{**r, "verdict": v.as_dict()} for r, v in zip(rows, verdicts, strict=True)],
        )
        _write_jsonl(out / "pairs.jsonl", [pair_row(p, samples[rollouts[p.rejected_from].prompt], n)
                                           for n, p in enumerate(pairs)])  # fmt: skip
        ids = [s.id for s in context.dataset(pool).samples]
        accuracy = group_accuracy(rollouts, [v.accurate for v in verdicts])
        kept, dropped = prune(ids, accuracy, c.prune_share, context.config.seed * 1000 + k)
        easy = [p for p in ids if accuracy.get(p) == 1.0]
        (out / "prompts-next.json").write_text(json.dumps({"kept": kept, "dropped": dropped, "easy": easy}))
        metrics = verdict_metrics(verdicts, judged=judge is not None)
        metrics.update(
            {f"veripo/pairs/{kind}": float(sum(p.kind == kind for p in pairs)) for kind in PAIR_KINDS}
        )
        metrics.update({"veripo/iteration": float(k), "veripo/pairs/total": float(len(pairs)),
                        "veripo/prompts/pool": float(len(ids)), "veripo/prompts/easy": float(len(easy)),
                        "veripo/prompts/dropped": float(len(dropped))})  # fmt: skip
        context.log_step(metrics)

    def preference(self, context: vidrl.StageContext, k: int) -> None:
        """Run the inner DPO stage on the iteration's pairs (none: skipped, with a warning)."""
        path = self.directory(context, k) / "pairs.jsonl"
        if not path.read_text().strip():
            log.warning("veripo: iteration %d built no preference pairs; its DPO phase is skipped", k)
            if context.is_main:
                context.log_step({"veripo/iteration": float(k), "veripo/dpo_skipped": 1.0})
            return
        split = f"veripo-{k}-pairs"
        context.add_dataset(split, vidrl.load_dataset(path, root=context.dataset("train").root))
        self.inner(context, self.config.dpo, split).run(context)

    # -- helpers ----------------------------------------------------------------------------

    def directory(self, context: vidrl.StageContext, k: int) -> Path:
        return context.run_dir / "veripo" / f"stage-{context.state.stage_index}" / f"iter-{k}"

    def pool(self, context: vidrl.StageContext, k: int) -> str:
        """The data split of iteration ``k`` 's GRPO prompts: all of ``train``, then what the
        previous iteration kept."""
        if k == 0:
            return "train"
        kept = json.loads((self.directory(context, k - 1) / "prompts-next.json").read_text())["kept"]
        train = context.dataset("train")
        index = {s.id: i for i, s in enumerate(train.samples)}
        rows = [index[p] for p in kept]
        subset = vidrl.Dataset([train.samples[i] for i in rows], [train.origins[i] for i in rows], train.root)
        context.add_dataset(f"veripo-{k}-prompts", subset)
        return f"veripo-{k}-prompts"

    def inner(self, context: vidrl.StageContext, spec: vidrl.ComponentSpec, split: str) -> vidrl.Stage:
        """The inner stage of ``spec``, reading ``split``."""
        stage = context.session.create("stage", spec.name, spec.options)
        if not any(f.name == "split" for f in dataclasses.fields(stage.config)):
            raise vidrl.ConfigError(
                [f"veripo: inner stage {spec.name!r} has no 'split' option to read its data"]
            )
        return type(stage)(dataclasses.replace(stage.config, split=split))


class RolloutRecorder:
    """An event-hook listener (subscribed for the GRPO phase): appends each step's roll-outs
    (texts, token counts, cut-off flags, rewards) to ``log``; roll-outs of augmented prompts are
    left out (their prompt is not the data set's)."""

    def __init__(self, log: vidrl.JsonlLog):
        self.log = log

    @vidrl.hookimpl
    def on_rollouts_scored(self, batch: vidrl.RolloutBatch, state: vidrl.TrainState) -> None:
        step = state.global_step + 1  # the step being taken, as it is counted once done
        for i, (text, sample) in enumerate(zip(batch.texts, batch.samples, strict=True)):
            if sample.extra(vidrl.Augmentation) is not None:
                continue
            self.log.write({
                "step": step, "prompt": sample.id, "group": f"{step}:{state.rank}:{i // batch.group_size}",
                "text": text, "tokens": int(batch.response_mask[i].sum()),
                "truncated": bool(batch.truncated[i]), "reward": float(batch.scores.total[i]),
            })  # fmt: skip


def with_progress(judge: vidrl.Judge, context: vidrl.StageContext, chunk: int = 64) -> Any:
    """``judge`` called in chunks under a progress bar."""

    def call(items: list[vidrl.JudgeItem]) -> list[vidrl.Judgement]:
        bar = context.progress_bar(len(items), 0, desc="judging")
        out: list[vidrl.Judgement] = []
        for i in range(0, len(items), chunk):
            out += judge(items[i : i + chunk])
            bar.update(min(chunk, len(items) - i))
        bar.close()
        return out

    return call


def check_unique_ids(dataset: vidrl.Dataset) -> None:
    """Pairs and pruning find prompts by id: a repeated id is an error naming it."""
    counts = Counter(s.id for s in dataset.samples)
    dup = sorted(i for i, n in counts.items() if n > 1)
    if dup:
        raise vidrl.ConfigError(
            [f"veripo: sample ids must be unique (pairs and pruning use them): {dup[:5]}"]
        )
