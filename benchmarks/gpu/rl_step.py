"""One RL step at a chosen model size, timed and measured by phase: the tiny test model, or a
real-size Qwen2.5-VL (3B or 7B dimensions, random weights, nothing downloaded) in a precision
with or without gradient checkpointing. Needs no video library: clips are random frame tensors.

Reports per phase (rollout, score, logprob, update) the median seconds and peak extra memory
over ``--steps`` steps after one warm-up step, the step's peak memory, its tokens per second, and
the model FLOPs utilisation of the training passes (MFU: the log-prob forward, 2·N·tokens, and the
update's forward and backward, 6·N·tokens, plus the LM head on the response tokens, 8·V·H each,
over the log-prob and update phases' time and the device's dense bf16 peak; N the language
model's trainable parameters without embeddings and head; a prompt counted once per micro-batch
when the forwards share it, as they do unless ``--forward-every-copy``). β = 0, so no reference
model is loaded; the vision tower is frozen.

    python benchmarks/gpu/rl_step.py --size qwen2_5_vl_3b --precision bf16-mixed --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: step_phases

from step_phases import PHASES, MemoryPhases  # noqa: E402

import vidrl  # noqa: E402

#: dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, from the vendors' data sheets
PEAK_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


class PeakPhases(MemoryPhases):
    """``MemoryPhases`` that also keep the step's absolute peak (CUDA), across its phases."""

    peak_bytes = 0

    def __call__(self, name):
        return self._measured(super().__call__(name))

    @contextmanager
    def _measured(self, inner):
        with inner:
            yield
        if torch.cuda.is_available():
            PeakPhases.peak_bytes = max(PeakPhases.peak_bytes, torch.cuda.max_memory_allocated())


class Length(vidrl.Reward):
    """Response length / 10: varies inside groups, so every step updates."""

    name = "length"

    def __call__(self, responses, samples):
        return [len(r) / 10 for r in responses]


def _model(size: str, tmp: Path, device: str, precision: str, checkpointing: bool, share: bool = True):
    """(model prepared for the precision, processor)."""
    from accelerate import Accelerator
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vidrl.models.policy import enable_gradient_checkpointing, freeze
    from vidrl.models.shared_vision import share_identical_clips
    from vidrl.models.sizes import sized_config
    from vidrl.models.tiny import build_tiny_model

    tiny = build_tiny_model("qwen2_5_vl", tmp / "tiny", max_pixels=448 * 448)
    processor = AutoProcessor.from_pretrained(tiny)
    torch.manual_seed(0)
    if size == "tiny":
        model = AutoModelForImageTextToText.from_pretrained(tiny).to(device)
    else:
        with torch.device(device):  # random weights made where they live, in float32 (master weights)
            model = AutoModelForImageTextToText.from_config(sized_config(size, processor.tokenizer))
    if share:  # as vidrl.models.policy.load_model does
        share_identical_clips(model)
    freeze(model, ("visual",))
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    acc = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if precision == "bf16-mixed" else "no")
    return acc.prepare_model(model), processor


def _batch(processor, prompts: int, frames: int, side: int, device: str):
    """``prompts`` multiple-choice samples, each with a random clip of ``frames`` frames."""
    from vidrl.models.inputs import prepare_batch
    from vidrl.testing import builders

    samples = [builders.sample("multiple_choice", i) for i in range(prompts)]
    clips = [builders.frames(frames, side, side, seed=i) for i in range(prompts)]
    budget = vidrl.config.VisionBudget(max_prompt_tokens=32768, max_pixels=side * side, min_frames=2)
    batch, _ = prepare_batch(processor, samples, clips, budget)
    return batch.to(device), samples


def run(args: argparse.Namespace) -> dict:
    from vidrl.engine.step import Algorithm, Learner, StepOptions, rl_step
    from vidrl.models.generate import HFGenerate

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    session = vidrl.Session().load()
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = _model(args.size, Path(tmp), device, args.precision, args.gradient_checkpointing,
                                  not args.encode_every_copy)  # fmt: skip
        batch, samples = _batch(processor, args.prompts, args.frames, args.side, device)
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    base = getattr(model, "module", model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    backend = HFGenerate(HFGenerate.Config(share_prompt=not args.prefill_every_copy)).attach(base)
    learner = Learner(model, opt, None, backend, eos)
    algo = Algorithm(
        session.create("advantage", "grpo"), session.create("loss", "ppo_clip"), [("length", 1.0, Length())]
    )
    sampling = vidrl.Sampling(1.0, 1.0, args.max_new_tokens)
    opts = StepOptions(
        args.group, args.micro_batch, 1, 1.0, sampling, share_prefix=not args.forward_every_copy
    )
    rows = []
    for i in range(args.steps + 1):
        phases = PeakPhases(cuda)
        metrics, _ = rl_step(learner, algo, tok, batch, samples, opts, phases=phases)
        if i:  # the first step warms up allocators, kernels and caches
            rows.append({"seconds": dict(phases.seconds), "peak_mib": dict(phases.peak_mib),
                         "response_tokens": metrics["response_length/mean"]})  # fmt: skip
    n_lm = sum(p.numel() for n, p in base.named_parameters() if p.requires_grad and "embed" not in n)
    head = base.get_output_embeddings().weight
    n_lm -= head.numel() if head.requires_grad and head is not base.get_input_embeddings().weight else 0
    return _summary(args, rows, batch, n_lm, head.numel(), torch.cuda.get_device_name() if cuda else "cpu")


def _summary(args: argparse.Namespace, rows: list[dict], batch, n_lm: int, head: int, device: str) -> dict:
    med = {w: {p: statistics.median(r[w].get(p, 0.0) for r in rows) for p in PHASES}  # a phase may not run
           for w in ("seconds", "peak_mib")}  # fmt: skip
    step = sum(med["seconds"].values())
    b = args.prompts * args.group
    response = b * statistics.median(r["response_tokens"] for r in rows)
    # prompt copies a training forward computes: one per row, or one per (micro-batch, prompt) shared
    copies = (
        b if args.forward_every_copy else len({(i // args.micro_batch, i // args.group) for i in range(b)})
    )
    tokens = copies * batch["input_ids"].shape[1] + response
    flops = 8 * n_lm * tokens + 8 * head * response  # log-prob fwd (2) + update fwd and bwd (6)
    prefills = args.prompts * (args.group if args.prefill_every_copy else 1)
    rollout_flops = 2 * n_lm * (prefills * batch["input_ids"].shape[1] + response)  # prefill + decoding
    train_seconds = med["seconds"]["logprob"] + med["seconds"]["update"]
    peak = next((v for k, v in PEAK_BF16.items() if k in device), None)
    mfu = None if peak is None or args.precision != "bf16-mixed" else flops / train_seconds / (peak * 1e12)
    return {
        "device": device, "size": args.size, "precision": args.precision, "frames": args.frames,
        "side": args.side, "shared_vision": not args.encode_every_copy,
        "shared_prefill": not args.prefill_every_copy, "shared_prefix": not args.forward_every_copy,
        "rollout_tflops": rollout_flops / 1e12,
        "train_tflops": flops / 1e12,
        "gradient_checkpointing": args.gradient_checkpointing, "prompts": args.prompts, "group": args.group,
        "prompt_tokens": int(batch["input_ids"].shape[1]), "trainable_params": n_lm, "steps": args.steps,
        "median": med, "step_seconds": step, "tokens_per_second": tokens / step,
        "mfu": mfu,
        "peak_memory_gib": PeakPhases.peak_bytes / 2**30 if torch.cuda.is_available() else None,
        "runs": rows,
    }  # fmt: skip


def markdown(r: dict) -> str:
    sec, mem = r["median"]["seconds"], r["median"]["peak_mib"]
    mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
    lines = [
        f"## {r['size']} — {r['device']}, {r['precision']}, checkpointing {r['gradient_checkpointing']}, "
        f"{r['frames']} frames of {r['side']}², clips {'shared' if r['shared_vision'] else 'per row'}, "
        f"prefill {'once per prompt' if r['shared_prefill'] else 'per row'}, "
        f"update forward {'once per prompt' if r.get('shared_prefix', False) else 'per row'}",
        "",
        f"{r['prompts']} prompts × {r['group']} roll-outs, prompt {r['prompt_tokens']} tokens, "
        f"{r['trainable_params'] / 1e9:.2f} B trainable; median of {r['steps']} steps: "
        f"**{r['step_seconds']:.2f} s/step**, {r['tokens_per_second']:.0f} tokens/s, MFU {mfu}, "
        f"peak memory {r['peak_memory_gib'] or 0:.1f} GiB; language-model FLOPs (weights only): roll-out "
        f"{r['rollout_tflops']:.3g} T, log-prob + update {r['train_tflops']:.3g} T.",
        "",
        "| phase | s | peak extra MiB |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {p} | {sec[p]:.3f} | {mem[p]:.0f} |" for p in PHASES]
    return "\n".join(lines + [""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="tiny", choices=["tiny", "qwen2_5_vl_3b", "qwen2_5_vl_7b"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16-mixed"])
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--side", type=int, default=336)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument(
        "--encode-every-copy",
        action="store_true",
        help="the vision tower encodes each row's copy of a clip (as before clips were shared)",
    )
    ap.add_argument(
        "--prefill-every-copy",
        action="store_true",
        help="generation prefills each of a prompt's G copies (as before the prompt was shared)",
    )
    ap.add_argument(
        "--forward-every-copy",
        action="store_true",
        help="the log-prob and update forwards compute each row's copy of its prompt (no shared prefix)",
    )
    ap.add_argument("--out", type=Path, help="append the result to <out>/rl-step.{jsonl,md}")
    args = ap.parse_args()
    result = run(args)
    print(markdown(result))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "rl-step.jsonl").open("a") as f:
            f.write(json.dumps(result) + "\n")
        with (args.out / "rl-step.md").open("a") as f:
            f.write(markdown(result) + "\n")


if __name__ == "__main__":
    main()
