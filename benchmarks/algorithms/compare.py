"""Side-by-side runs of algorithms on the synthetic tasks: the same config, seeds and budget,
one variant per algorithm. Writes, under benchmarks/algorithms/<name>/: per-run metrics
(``<variant>-seed<k>.jsonl``), ``curves.png`` (per-task training reward and the share of
zero-std groups, for tool runs also accuracy and calls, mean over seeds) and ``results.md``
(held-out accuracy / mIoU per task after each stage, mean over seeds, with the per-seed values;
then each paper claim of ``CLAIMS`` judged against the baseline, paired by seed, with 95 %
bootstrap intervals: ``stats.py``; the whole comparison's wall time).

Comparisons marked ``on_base`` start every run from the same cached base model on the suite
(``base/``: built once by ``base/build.py``, reused while its recipe is unchanged) and run only the
RL stage of ``base/rl.yaml`` with each variant's overrides; the others run their config's SFT
stage inside every run.

usage: python benchmarks/algorithms/compare.py dgrpo [--seeds 0 1 2 3 4] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vidrl import load_config

sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its neighbours stats.py, base/
import stats  # noqa: E402
from base import build as base_build  # noqa: E402

from vidrl.config import read_yaml
from vidrl.engine.pipeline import train

ROOT = Path(__file__).resolve().parents[2]
#: comparisons that also measure the final model's held-out reasoning (consistency, length)
REASONING = {"veripo"}


@dataclass(frozen=True)
class Comparison:
    """A config, its variants' overrides (the first variant is the baseline) and whether every
    run starts from the cached base on the suite (only an RL stage: ``stages.0``)."""

    config: str
    variants: dict[str, list[str]] = field(default_factory=dict)
    on_base: bool = False

    @property
    def rl_stage(self) -> int:
        return 0 if self.on_base else 1


ON_BASE = "benchmarks/algorithms/base/rl.yaml"
FORTY = "stages.0.options.steps=40"
REG = "{name: reg_grpo, options: {beta: 0.1, eps: 1.0e-6, kl_estimator: k3}}"
AUG = "augmenters=[{name: difficulty_aug, options: {window: 100, dead_band: 0.1, hints: true, easy: noise, sigma: 0.05}}]"  # noqa: E501
#: 40 roll-out batches, two optimizer steps on each: the second is off-policy, so clipping acts
OFF_POLICY = (FORTY, "stages.0.options.num_iterations=2")
COMPARISONS = {
    "dgrpo": Comparison(ON_BASE, {"grpo": [], "dgrpo": ["advantage={name: dgrpo, options: {c: 1.5}}"]}, True),
    "reg_grpo": Comparison(  # 40 roll-out batches each; Reg-GRPO's lagged old policy: 2 steps per batch
        ON_BASE,
        {
            "grpo": [
                "loss={name: ppo_clip, options: {beta: 0.1, kl_estimator: k3}}",
                FORTY,
            ],
            "reg_grpo": [f"loss={REG}", FORTY, "stages.0.options.num_iterations=2"],
            "reg_grpo+aug": [
                f"loss={REG}",
                FORTY,
                "stages.0.options.num_iterations=2",
                AUG,
            ],
        },
        True,
    ),
    "tools": Comparison(
        "examples/configs/dgrpo-tools.yaml",
        {  # the same data, steps and roll-outs; without tools the answer comes from the 8 prompt frames
            "no_tools": [
                "tools=[]",
                "data.synth.tool_responses=false",
                "rewards=[{name: format, weight: 0.5, options: {think: false}}, multiple_choice]",
                "advantage.options.c=1.5",
            ],
            "tools": [],
        },
    ),
    "zoo": Comparison(  # the zoo-breadth algorithms against GRPO, from the base, 2 optimizer steps per batch
        ON_BASE,
        {
            "grpo": [*OFF_POLICY],
            "gspo": [*OFF_POLICY, "loss={name: gspo}"],
            "cispo": [*OFF_POLICY, "loss={name: cispo}"],
            "dapo": [
                *OFF_POLICY,
                "loss={name: ppo_clip, options: {beta: 0.01, eps_high: 0.28, aggregation: token_mean}}",
                "stages.0.options.dynamic_sampling=true",
                "stages.0.options.max_draws=3",
                "rewards=[{name: format, weight: 0.5, options: {think: false}}, multiple_choice, numeric, "
                "{name: temporal_iou, options: {alpha: 0.2, beta: 0.8}}, "
                "{name: overlong, options: {max_length: 16, buffer: 4}}]",
            ],
            "high_entropy": [
                *OFF_POLICY,
                "loss={name: high_entropy, options: {beta: 0.01, rho: 0.2, aggregation: micro_token_mean}}",
            ],
        },
        True,
    ),
    "veripo": Comparison(
        "examples/configs/veripo.yaml",
        {  # GRPO alone gets the loop's optimizer-step budget: 2 × (20 GRPO + 10 DPO) steps
            "grpo": [
                "stages.1={name: rl, options: {steps: 60, prompts_per_step: 8, group_size: 8, "
                "micro_batch_size: 32, max_new_tokens: 24, optim: {lr: 5.0e-5}}}"
            ],
            "veripo": [],
            "veripo+tiny_lm_judge": ["stages.1.options.judge={name: causal_lm, options: {model: tiny}}"],
        },
    ),
}


#: name → the papers' claims it tests: (variant, metric, higher is better, the claim), each against
#: the comparison's first variant (the baseline), paired by seed. Metrics: ``eval/...`` of the final
#: held-out evaluation, ``adv/zero_std_frac`` averaged over the RL steps, ``reasoning/...``.
CLAIMS = {
    "dgrpo": [("dgrpo", "eval/accuracy", True, "VITAL: DGRPO, a higher multi-task accuracy than GRPO"),
              ("dgrpo", "eval/miou", True, "VITAL: DGRPO, a higher grounding mIoU than GRPO")],
    "reg_grpo": [
        ("reg_grpo", "eval/accuracy", True, "DeepVideo-R1: Reg-GRPO reaches a higher accuracy than GRPO"),
        ("reg_grpo+aug", "eval/accuracy", True, "DeepVideo-R1: Reg-GRPO + augmentation, higher accuracy"),
        ("reg_grpo+aug", "adv/zero_std_frac", False, "DeepVideo-R1: augmentation, fewer zero-std groups"),
        ("reg_grpo", "eval/miou", True, "DeepVideo-R1: Reg-GRPO, a higher grounding mIoU than GRPO"),
    ],
    "veripo": [
        ("veripo", "reasoning/inconsistent_rate", False, "VerIPO: a lower inconsistency rate than GRPO"),
        ("veripo", "reasoning/response_length", True, "VerIPO: longer reasoning than GRPO alone"),
    ],
    "tools": [("tools", "eval/accuracy", True, "VITAL: the frame toolbox helps where the first look misses")],
    "zoo": [(v, key, True, f"{v}: a higher {what} than GRPO")
            for v in ("gspo", "cispo", "dapo", "high_entropy")
            for key, what in (("eval/accuracy", "accuracy"), ("eval/miou", "grounding mIoU"))],
}  # fmt: skip


def seed_values(
    results: dict[str, list[list[dict]]], seeds: list[int], variant: str, key: str
) -> dict[int, float]:
    """Seed → the value of ``key`` in the variant's run of that seed (see ``CLAIMS``)."""
    out = {}
    for seed, rows in zip(seeds, results[variant], strict=True):
        if key.startswith(("eval/", "reasoning/")):
            found = [
                r[key]
                for r in rows
                if key in r and (key.startswith("reasoning/") or r.get("eval") == "after")
            ]
        else:
            found = [statistics.mean(r[key] for r in rows if key in r)] if any(key in r for r in rows) else []
        if found:
            out[seed] = float(found[-1])
    return out


def verdicts(name: str, results: dict[str, list[list[dict]]], seeds: list[int]) -> str:
    """Each claim of ``name``: the baseline's and the variant's mean [95 % interval], and the
    verdict on their paired difference (``stats.verdict``)."""
    baseline = next(iter(results))
    lines = [
        "",
        f"Claims, each against `{baseline}`, paired by seed (95 % bootstrap intervals, {len(seeds)} seeds):",
        "",
    ]
    for variant, key, higher, claim in CLAIMS.get(name, []):
        mine, theirs = (seed_values(results, seeds, v, key) for v in (variant, baseline))
        if not mine or not theirs:
            continue
        a, b = stats.bootstrap(list(theirs.values())), stats.bootstrap(list(mine.values()))
        lines.append(f"- {claim} (`{key}`): {baseline} {a}, {variant} {b}: "
                     f"{stats.verdict(stats.paired(mine, theirs), higher)}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_variant(
    comparison: Comparison,
    overrides: list[str],
    seed: int,
    steps: int | None,
    reasoning: bool,
    on: Path | None,
) -> tuple[list[dict], float]:
    """One run's metrics rows (plus, with ``reasoning``, a row of held-out reasoning measures)
    and its wall time; ``on``: the cached base's folder (``base/build.py``) to start from."""
    base = ROOT / comparison.config
    extra = [f"seed={seed}"] + ([f"stages.{comparison.rl_stage}.options.steps={steps}"] if steps else [])
    if on is None:
        extra.append(f"data.synth.seed={seed}")
    else:
        suite = on / "suite"
        extra += [f"model.path={on / 'model'}", f"data.train={suite / 'train' / 'data.jsonl'}",
                  f"data.eval={suite / 'eval' / 'data.jsonl'}"]  # fmt: skip
    config, session = load_config(read_yaml(base), [*overrides, *extra])
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(config, session, Path(tmp) / "run")
        seconds = time.perf_counter() - t
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
        held_out = (
            Path(config.data.eval) if config.data.eval else Path(tmp) / "run" / "data" / "eval" / "data.jsonl"
        )
        rows += window_diagnostics(Path(tmp) / "run", held_out)
        if reasoning:
            final = [*overrides, *extra, f"model.path={Path(tmp) / 'run' / 'model'}"]
            rows.append(heldout_reasoning(*load_config(read_yaml(base), final), Path(tmp) / "check"))
    return rows, seconds


def window_diagnostics(run: Path, held_out: Path) -> list[dict[str, float]]:
    """For held-out sets with a named window (``long_clip``): per evaluation, the share of answers
    whose first tool call asked for exactly the window (``window/right_call``) and the accuracy of
    those answers and of the rest (``window/accuracy_right_call``, ``window/accuracy_other``);
    ``held_out``: the held-out rows (data.jsonl)."""
    rows = [json.loads(x) for x in held_out.read_text().splitlines()]
    windows = {r["id"]: r["metadata"]["window"] for r in rows if "window" in r.get("metadata", {})}
    out = []
    for path in sorted(run.glob("eval-*-answers.jsonl")):
        answers = [json.loads(x) for x in path.read_text().splitlines()]
        if not windows or not answers or "calls" not in answers[0]:
            continue

        def right(a: dict) -> bool:
            args = a["calls"][0]["arguments"] if a["calls"] else {}
            return [args.get("start_time"), args.get("end_time")] == windows[a["sample"]]

        hit = [a for a in answers if right(a)]
        miss = [a for a in answers if not right(a)]
        row = {"eval": path.name.removeprefix("eval-").removesuffix("-answers.jsonl"),
               "window/right_call": len(hit) / len(answers)}  # fmt: skip
        for key, group in (("window/accuracy_right_call", hit), ("window/accuracy_other", miss)):
            if group:
                row[key] = statistics.mean(a["correct"] for a in group)
        out.append(row)
    return out


def heldout_reasoning(config, session, run_dir: Path) -> dict[str, float]:
    """Greedy answers of the final model on the held-out set: ``reasoning/inconsistent_rate``
    (judged by the ``answer_in_reasoning`` rule, the same for every variant) and
    ``reasoning/response_length`` (tokens)."""
    from vidrl.engine.context import RunContext
    from vidrl.engine.evaluation import eval_batches, evaluate
    from vidrl.plugins.veripo.verifier import judge_item

    ctx = RunContext(config, session, run_dir)
    p, texts, items = ctx.policy(), [], []

    def collect(batch_texts, samples):
        texts.extend(batch_texts)
        items.extend(judge_item(t, s) for t, s in zip(batch_texts, samples, strict=True))

    evaluate(p.base, p.tokenizer, eval_batches(ctx), p.eos_id, config.eval.max_new_tokens, on_batch=collect)
    verdicts = session.create("judge", "answer_in_reasoning")(items)
    lengths = [len(p.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return {
        "reasoning/inconsistent_rate": sum(not v.consistent for v in verdicts) / len(verdicts),
        "reasoning/response_length": statistics.mean(lengths),
    }


def _mean_curve(runs: list[list[dict]], key: str, k: int = 5) -> tuple[list[int], list[float]]:
    per_step: dict[int, list[float]] = {}
    for rows in runs:
        for r in rows:
            if "reward/mean" in r and key in r:  # the RL steps (of an rl stage or a loop's GRPO phases)
                per_step.setdefault(r["step"], []).append(r[key])
    steps = sorted(per_step)
    ys = [statistics.mean(per_step[s]) for s in steps]
    smooth = [statistics.mean(ys[max(0, i - k + 1) : i + 1]) for i in range(len(ys))]
    return steps, smooth


def plot(results: dict[str, list[list[dict]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {k for runs in results.values() for rows in runs for r in rows for k in r}
    tasks = sorted(k.split("/")[1] for k in seen if k.startswith("task/") and k.endswith("/reward"))
    panels = [(f"task/{t}/reward", f"{t}: reward") for t in tasks]
    if "tools/calls" in seen:  # tool runs: the bonus is in the reward, so show accuracy and the calls too
        panels += [(f"task/{t}/accuracy", f"{t}: accuracy") for t in tasks]
        panels += [
            ("tools/calls", "tool calls per roll-out"),
            ("tools/success", "share of calls that worked"),
        ]
    panels.append(("adv/zero_std_frac", "share of zero-std groups"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for k, (variant, runs) in enumerate(results.items()):
        for ax, (key, title) in zip(axes[0], panels, strict=True):
            if any(key in r for rows in runs for r in rows):
                ax.plot(*_mean_curve(runs, key), label=variant, color=f"C{k}")
            ax.set(title=title, xlabel="step")
    for ax in axes[0]:
        ax.legend(fontsize=8)
    fig.suptitle("RL stage, mean over seeds, moving average of 5 steps")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def table(results: dict[str, list[list[dict]]], seconds: dict[str, float], seeds: list[int]) -> str:
    # per variant and seed: evaluation label (before, stage-0-sft, ..., after) → row
    evals: dict[str, list[dict[str, dict]]] = {v: [] for v in results}
    for v, runs in results.items():
        for rows in runs:
            merged: dict[str, dict] = {}
            for r in rows:
                if "eval" in r:  # the evaluation's scores and any diagnostics of the same evaluation
                    merged.setdefault(r["eval"], {}).update(r)
            evals[v].append(merged)
    keys = sorted({k for runs in evals.values() for rows in runs for r in rows.values() for k in r
                   if k.startswith(("eval/", "window/")) and k != "eval/n"})  # fmt: skip
    lines = [f"Held-out greedy evaluation, mean over seeds {seeds} [95 % bootstrap interval].", ""]
    short = [
        k.removeprefix("eval/").replace("accuracy/category/", "").replace("miou/category/", "") for k in keys
    ]
    lines += ["| variant | when | " + " | ".join(short) + " |"]
    lines += ["|---|---|" + "---|" * len(keys)]
    for v, runs in evals.items():
        for label in runs[0]:
            cells = [_cell([rows[label][k] for rows in runs if k in rows.get(label, {})]) for k in keys]
            lines.append(f"| {v} | {label} | " + " | ".join(cells) + " |")
    key = "adv/zero_std_frac"
    zero = {
        v: statistics.mean(r[key] for rows in runs for r in rows if key in r) for v, runs in results.items()
    }
    lines += ["", "| variant | mean share of zero-std groups (RL) | wall time per run (s) |", "|---|---|---|"]
    lines += [f"| {v} | {zero[v]:.3f} | {seconds[v]:.0f} |" for v in results]
    reasoning = sorted({k for runs in results.values() for rows in runs for r in rows for k in r
                        if k.startswith("reasoning/")})  # fmt: skip
    if reasoning:
        lines += ["", "Held-out greedy answers of the final model:", ""]
        lines += ["| variant | " + " | ".join(k.removeprefix("reasoning/") for k in reasoning) + " |"]
        lines += ["|---|" + "---|" * len(reasoning)]
        for v, runs in results.items():
            vals = {k: [r[k] for rows in runs for r in rows if k in r] for k in reasoning}
            lines.append(f"| {v} | " + " | ".join(_cell(vals[k]) for k in reasoning) + " |")
    return "\n".join(lines) + "\n"


def _cell(vals: list[float]) -> str:
    """The mean [95 % bootstrap interval over seeds]."""
    if not vals:
        return ""
    ci = stats.bootstrap(vals)
    return f"{ci.mean:.3f} [{ci.low:.2f}, {ci.high:.2f}]"


def base_scores(on: Path) -> str:
    """The cached base's held-out scores (before RL, the same for every run), per task and level."""
    info = json.loads((on / "base.json").read_text())
    scores = {k: v for k, v in info["heldout"].items() if "/category/" in k}
    lines = [f"Every run starts from the cached base `{info['key']}` (`base/build.py`, built in "
             f"{info['seconds'] / 60:.1f} min); its held-out scores before RL:", "",
             "| " + " | ".join(k.split("/category/")[1] for k in scores) + " |", "|" + "---|" * len(scores),
             "| " + " | ".join(f"{v:.2f}" for v in scores.values()) + " |", ""]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(COMPARISONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, help="RL steps (default: the config's)")
    args = ap.parse_args()
    comparison = COMPARISONS[args.name]
    on = base_build.build() if comparison.on_base else None
    out = Path(__file__).parent / args.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    results: dict[str, list[list[dict]]] = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for variant, overrides in comparison.variants.items():
        times = []
        for seed in args.seeds:
            rows, secs = run_variant(comparison, overrides, seed, args.steps, args.name in REASONING, on)
            (out / f"{variant}-seed{seed}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            results.setdefault(variant, []).append(rows)
            times.append(secs)
        seconds[variant] = statistics.mean(times)
    plot(results, out / "curves.png")
    device = f"CPU ({platform.machine()}), {torch.get_num_threads()} threads"
    wall = time.perf_counter() - start
    names = list(comparison.variants)
    head = (f"# {args.name}: {' vs '.join(names)}\n\nConfig `{comparison.config}`; {device}; "
            f"{len(names) * len(args.seeds)} runs in {wall / 60:.1f} min.\n\n")  # fmt: skip
    report = head + (base_scores(on) if on else "") + table(results, seconds, args.seeds)
    report += verdicts(args.name, results, args.seeds)
    (out / "results.md").write_text(report)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
