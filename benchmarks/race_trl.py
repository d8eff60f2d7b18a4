"""A race: Hugging Face TRL's GRPOTrainer against vidrl's ``rl`` stage (the whole stage, as
``vidrl train`` runs it: data feed, roll-out, update, logs), on the same tiny Qwen2.5-VL (random
weights), with the same shapes: 2 prompts × 4 roll-outs, at most 16 new tokens, β = 0, one S×S
image per prompt for TRL (which takes no video) and a 2-frame S×S clip of a synthetic mp4 (the
same pixel count after the temporal patch of 2) for vidrl; AdamW at lr 1e-5 on both sides, CPU,
the same torch build (TRL is installed with ``--no-deps`` into ``--trl-site`` on top of this
environment, created when missing). Each side runs in its own process, alternated ``--rounds``
times; per step wall time (between step ends, the first step excluded, median) and the process's
peak resident memory; reports the medians and vidrl/TRL ratios. S = ``--px`` (56: 4 vision
tokens per prompt; 224: 64).

    python benchmarks/race_trl.py [--rounds 3] [--steps 6] [--px 56] [--out benchmarks/results/cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRL = "trl==1.16.0"
PROMPT = "How many coloured squares are there? Answer with a number."


def _tiny(tmp: Path) -> Path:
    from vidrl.models.tiny import build_tiny_model

    return Path(build_tiny_model("qwen2_5_vl", tmp / "tiny"))


def _reward(completions, **_) -> list[float]:  # response length / 10: never a zero-variance group
    return [len(c[0]["content"] if isinstance(c, list) else c) / 10 for c in completions]


def run_trl(steps: int, side: int) -> list[float]:
    import numpy as np
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    with tempfile.TemporaryDirectory() as tmp:
        path = _tiny(Path(tmp))
        images = [Image.fromarray(np.random.RandomState(i).randint(0, 255, (side, side, 3), dtype=np.uint8))
                  for i in range(2)]  # fmt: skip
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        data = Dataset.from_dict({"prompt": [prompt, prompt], "image": images})
        stamps: list[float] = []

        class Stamp(TrainerCallback):
            def on_step_end(self, *args, **kwargs):
                stamps.append(time.perf_counter())

        config = GRPOConfig(
            output_dir=str(Path(tmp) / "out"), per_device_train_batch_size=8, num_generations=4,
            max_completion_length=16, beta=0.0, max_steps=steps, learning_rate=1e-5, use_cpu=True,
            report_to=[], save_strategy="no", logging_steps=1000, seed=0, bf16=False,
            gradient_checkpointing=False,  # vidrl's side does not checkpoint either
        )  # fmt: skip
        processor = AutoProcessor.from_pretrained(path)
        trainer = GRPOTrainer(model=str(path), reward_funcs=_reward, args=config, train_dataset=data,
                              processing_class=processor, callbacks=[Stamp()])  # fmt: skip
        trainer.train()
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def run_vidrl(steps: int, side: int) -> list[float]:
    """vidrl's ``rl`` stage through ``vidrl.engine.pipeline.train``: its feed (synthetic mp4s,
    decoded and prepared each step), roll-out, update, logs; a plugin stamps each step's end."""
    import vidrl
    from vidrl.engine.pipeline import train

    stamps: list[float] = []

    class Length(vidrl.Reward):
        name = "length"

        def __call__(self, responses, samples):
            return [len(r) / 10 for r in responses]

    class Race:
        @vidrl.hookimpl
        def register_rewards(self, register):
            register(Length)

        @vidrl.hookimpl
        def on_step_end(self, state, metrics):
            stamps.append(time.perf_counter())

    rl = {"steps": steps, "prompts_per_step": 2, "group_size": 4, "micro_batch_size": 8, "max_new_tokens": 16,
          "optim": {"lr": 1e-5, "max_grad_norm": 1.0}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        raw = {
            "seed": 0,
            "model": {"path": str(_tiny(Path(tmp))), "precision": "fp32"},
            "data": {"synth": {"train_videos": 2, "eval_videos": 0}, "max_frames": 2, "min_frames": 2,
                     "budget": {"max_pixels": side * side, "min_pixels": side * side}},
            "stages": [{"name": "rl", "options": rl}],
            "advantage": "grpo",
            "loss": {"name": "ppo_clip", "options": {"beta": 0.0}},
            "rewards": ["length"],
            "log": {"progress": False, "plot": False, "samples_every": 0},
            "eval": {"before": False, "between_stages": False, "after": False},
        }  # fmt: skip
        train(*vidrl.load_config(raw, extra_plugins=[(Race(), "race")]), Path(tmp) / "run")
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # the first step excluded


def _side(name: str, steps: int, px: int, trl_site: Path) -> dict:
    env = None
    if name == "trl":
        import os

        env = {**os.environ, "PYTHONPATH": f"{trl_site}:{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, __file__, "--side", name, "--steps", str(steps), "--px", str(px)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_trl(site: Path) -> None:
    """TRL, pinned, installed with ``--no-deps`` into ``site`` when it is not there yet."""
    if not (site / "trl").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), TRL]
        subprocess.run(pip, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--px", type=int, default=56, help="side of the images and clip frames")
    ap.add_argument("--trl-site", type=Path, default=Path(__file__).parent / ".trl-site")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--side", choices=["trl", "vidrl"], help=argparse.SUPPRESS
    )  # one side, in its own process
    args = ap.parse_args()
    if args.side:
        times = (run_trl if args.side == "trl" else run_vidrl)(args.steps, args.px)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
        print(json.dumps({"side": args.side, "step_seconds": times, "peak_mib": peak}))
        return
    ensure_trl(args.trl_site)
    runs = [
        _side(side, args.steps, args.px, args.trl_site)
        for _ in range(args.rounds)
        for side in ("trl", "vidrl")
    ]
    summary = {}
    for side in ("trl", "vidrl"):
        mine = [r for r in runs if r["side"] == side]
        summary[side] = {"step_s": statistics.median(statistics.median(r["step_seconds"]) for r in mine),
                         "peak_mib": statistics.median(r["peak_mib"] for r in mine)}  # fmt: skip
    summary["ratio"] = {k: summary["vidrl"][k] / summary["trl"][k] for k in ("step_s", "peak_mib")}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"race-trl-{args.px}.json").write_text(
            json.dumps({"summary": summary, "runs": runs}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
