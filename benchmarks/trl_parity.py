"""TRL 1.16's GRPOTrainer run on fixed inputs, to check docs/migrating.md: for each case, a
GRPOConfig, the vidrl configuration the table maps it to, and what TRL itself computed.

- Advantage cases: TRL's ``_generate_and_score_completions`` on 2 prompts × 4 completions given
  by a ``rollout_func`` (no generation), with reward functions returning fixed scores, None
  included; recorded: the advantages [8].
- Loss cases: TRL's ``_compute_loss`` on the same 8 completions in 2 micro-batches of 4
  (gradient accumulation 2), its per-token log-probs and entropies replaced by fixed float64
  values; recorded: the step's loss (the micro-batch losses summed, as accumulation does) and
  its gradient with respect to the log-probs [8, T].

The fixture is read by tests/plugins/test_trl_parity.py, which runs vidrl's components on the same
inputs (TRL is not needed there). TRL is installed with ``--no-deps`` into ``--trl-site`` on top of
this environment when missing (as race_trl.py does), and this script re-runs itself with it.

    python benchmarks/trl_parity.py [--out tests/fixtures/trl_parity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from race_trl import ensure_trl  # the same pinned TRL, installed the same way (benchmarks/ is on the path)

P, G, T, GA = 2, 4, 6, 2  # prompts, completions each, completion tokens, accumulation steps
NONE = None

# (name, GRPOConfig fields, reward functions' scores [B] per function with weights, vidrl estimator)
ADVANTAGE_CASES = [
    ("scale_rewards group, eps 1e-4, all-None rows", {"scale_rewards": "group"},
     [[1.0, NONE, 0.0, 1.0, NONE, NONE, 2.0, NONE]], [1.0],
     {"name": "grpo", "options": {"eps": 1.0e-4}}),
    ("scale_rewards batch", {"scale_rewards": "batch"},
     [[1.0, NONE, 0.0, 0.5, 0.25, NONE, 2.0, 1.0]], [1.0],
     {"name": "grpo", "options": {"eps": 1.0e-4, "std_scope": "batch"}}),
    ("scale_rewards none", {"scale_rewards": "none"},
     [[1.0, NONE, 0.0, 0.5, NONE, NONE, 2.0, 1.0]], [1.0],
     {"name": "dr_grpo", "options": {}}),
    ("two weighted reward functions, partly None", {"scale_rewards": "group", "reward_weights": [1.0, 0.5]},
     [[1.0, NONE, 0.0, 1.0, NONE, 0.0, 1.0, 1.0], [0.5, 1.0, NONE, 0.0, NONE, 1.0, NONE, 0.0]], [1.0, 0.5],
     {"name": "grpo", "options": {"eps": 1.0e-4}}),
]  # fmt: skip

# (name, GRPOConfig fields, vidrl loss)
LOSS_CASES = [
    ("loss_type dapo", {"loss_type": "dapo"}, {"name": "ppo_clip", "options": {"aggregation": "token_mean"}}),
    ("loss_type dapo, epsilon_high 0.28", {"loss_type": "dapo", "epsilon_high": 0.28},
     {"name": "ppo_clip", "options": {"eps_high": 0.28}}),
    ("loss_type dapo, beta 0.04 (bias-corrected KL, TRL's default)", {"loss_type": "dapo", "beta": 0.04},
     {"name": "ppo_clip", "options": {"beta": 0.04, "kl_bias_correction": True}}),
    ("loss_type dapo, beta 0.04, use_bias_correction_kl false",
     {"loss_type": "dapo", "beta": 0.04, "use_bias_correction_kl": False},
     {"name": "ppo_clip", "options": {"beta": 0.04}}),
    ("loss_type dapo, delta 1.5 (two-sided clipping)", {"loss_type": "dapo", "delta": 1.5},
     {"name": "ppo_clip", "options": {"delta": 1.5}}),
    ("loss_type bnpo", {"loss_type": "bnpo"},
     {"name": "ppo_clip", "options": {"aggregation": "micro_token_mean"}}),
    ("loss_type grpo", {"loss_type": "grpo"},
     {"name": "ppo_clip", "options": {"aggregation": "sequence_mean"}}),
    ("loss_type dr_grpo", {"loss_type": "dr_grpo"},
     {"name": "ppo_clip", "options": {"aggregation": "constant", "max_length": T}}),
    ("importance_sampling_level sequence, loss_type grpo (GSPO)",
     {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
     {"name": "gspo", "options": {"eps_low": 3e-4, "eps_high": 4e-4}}),
    ("loss_type cispo, epsilon_high 5.0", {"loss_type": "cispo", "epsilon_high": 5.0},
     {"name": "cispo", "options": {"eps_high": 4.0}}),
    ("top_entropy_quantile 0.2, loss_type dapo", {"loss_type": "dapo", "top_entropy_quantile": 0.2},
     {"name": "high_entropy", "options": {"rho": 0.2, "aggregation": "token_mean"}}),
]  # fmt: skip


def fixed_inputs(seed: int = 0) -> dict[str, list]:
    """The loss cases' inputs [B, T], float64: log-probs near the old ones, a reference, advantages,
    a ragged completion mask (every row non-empty, the two micro-batches with different token
    counts) and entropies."""
    import torch

    g = torch.Generator().manual_seed(seed)
    b = P * G
    lp = torch.randn(b, T, generator=g, dtype=torch.float64) * 0.5 - 1.5
    lengths = torch.tensor([6, 2, 5, 3, 6, 6, 4, 5])
    mask = (torch.arange(T)[None] < lengths[:, None]).double()
    return {
        "logprobs": lp.tolist(),
        "old_logprobs": (lp + torch.randn(b, T, generator=g, dtype=torch.float64) * 0.4).tolist(),
        "ref_logprobs": (lp + torch.randn(b, T, generator=g, dtype=torch.float64) * 0.3).tolist(),
        "advantages": torch.randn(b, generator=g, dtype=torch.float64).tolist(),
        "mask": mask.tolist(),
        "entropies": (torch.rand(b, T, generator=g, dtype=torch.float64) * 3).tolist(),
    }


def _trainer(tmp: Path, path: Path, fields: dict, reward_funcs=None, rollout_func=None):
    from datasets import Dataset
    from transformers import AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    prompt = [{"role": "user", "content": "How many squares?"}]
    config = GRPOConfig(
        output_dir=str(tmp / "out"), per_device_train_batch_size=G, num_generations=G,
        gradient_accumulation_steps=GA, max_completion_length=T, use_cpu=True, report_to=[],
        save_strategy="no", seed=0, bf16=False, gradient_checkpointing=False, **fields,
    )  # fmt: skip
    return GRPOTrainer(
        model=str(path), reward_funcs=reward_funcs or (lambda completions, **_: [0.0] * len(completions)),
        args=config, train_dataset=Dataset.from_dict({"prompt": [prompt] * P}),
        processing_class=AutoProcessor.from_pretrained(path), rollout_func=rollout_func,
    )  # fmt: skip


def trl_advantages(
    tmp: Path, path: Path, fields: dict, scores: list[list], weights: list[float]
) -> list[float]:
    """TRL's advantages [B] for completions whose reward functions return ``scores``."""

    def rollout(prompts, trainer):
        n = len(prompts)
        return {"prompt_ids": [[1, 2]] * n, "completion_ids": [[3, 4]] * n, "logprobs": [[-1.0, -1.0]] * n}

    funcs = []
    for k, column in enumerate(scores):

        def reward(completions, _column=column, **_):
            return list(_column)

        reward.__name__ = f"reward_{k}"
        funcs.append(reward)
    fields = {**fields, "reward_weights": weights}
    trainer = _trainer(tmp, path, fields, funcs, rollout)
    trainer.model.train()
    rows = [{"prompt": [{"role": "user", "content": f"prompt {p}"}]} for p in range(P) for _ in range(G)]
    return trainer._generate_and_score_completions(rows)["advantages"].double().tolist()


def trl_loss(tmp: Path, path: Path, fields: dict, x: dict) -> tuple[float, list]:
    """TRL's step loss (2 accumulated micro-batches) and its gradient wrt the log-probs [B, T]."""
    import torch

    trainer = _trainer(tmp, path, fields)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = GA
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in x.items()}
    lp = t["logprobs"].clone().requires_grad_(True)
    total = torch.zeros((), dtype=torch.float64)
    for rows in (slice(0, G), slice(G, 2 * G)):
        part = lp[rows]
        fixed = (part, t["entropies"][rows], None)  # log-probs, entropies, no auxiliary loss
        trainer._get_per_token_logps_and_entropies = lambda *a, _f=fixed, **k: _f
        ones = torch.ones(G, 2, dtype=torch.long)
        inputs = {
            "prompt_ids": ones, "prompt_mask": ones,
            "completion_ids": torch.ones(G, T, dtype=torch.long), "completion_mask": t["mask"][rows].long(),
            "advantages": t["advantages"][rows], "old_per_token_logps": t["old_logprobs"][rows],
            "ref_per_token_logps": t["ref_logprobs"][rows], "num_items_in_batch": t["mask"].sum(),
        }  # fmt: skip
        total = total + trainer._compute_loss(trainer.model, inputs)
    (grad,) = torch.autograd.grad(total, lp)
    return float(total.detach()), grad.tolist()


def run_trl() -> dict:
    import trl

    from vidrl.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = Path(build_tiny_model("qwen2_5_vl", tmp / "tiny"))
        x = fixed_inputs()
        advantages = [
            {"name": name, "trl": fields, "scores": scores, "weights": weights, "vidrl": {"advantage": est},
             "advantages": trl_advantages(tmp, path, fields, scores, weights)}
            for name, fields, scores, weights, est in ADVANTAGE_CASES
        ]  # fmt: skip
        losses = []
        for name, fields, loss in LOSS_CASES:
            value, grad = trl_loss(tmp, path, fields, x)
            losses.append({"name": name, "trl": fields, "vidrl": {"loss": loss}, "loss": value, "grad": grad})
    shape = {"prompts": P, "group_size": G, "tokens": T, "accumulation": GA}
    return {"trl_version": trl.__version__, "shape": shape, "inputs": x, "advantage_cases": advantages,
            "loss_cases": losses}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parents[1] / "tests" / "fixtures" / "trl_parity.json"
    )
    ap.add_argument("--trl-site", type=Path, default=Path(__file__).parent / ".trl-site")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # TRL importable: run it
    args = ap.parse_args()
    if args.inside:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(run_trl(), indent=1) + "\n")
        print(f"wrote {args.out}")
        return
    ensure_trl(args.trl_site)
    env = {**os.environ, "PYTHONPATH": f"{args.trl_site}:{os.environ.get('PYTHONPATH', '')}",
           "TRL_EXPERIMENTAL_SILENCE": "1"}  # fmt: skip
    cmd = [sys.executable, __file__, "--inside", "--out", str(args.out), "--trl-site", str(args.trl_site)]
    subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
