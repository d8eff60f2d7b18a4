"""Peak memory of the log-prob forward at a real vocabulary size: vidrl's memory-lean path
(``vidrl.sequence_logprobs``: hidden states of the response positions only, projected onto the
vocabulary in chunks by ``vidrl.ops.linear_token_logprobs``) against the full-logits path it
replaced (logits for every position, then sliced to the response).

The model is the tiny Qwen2.5-VL architecture with Qwen's vocabulary (V = 152,064) and random
weights; the prompt is a long text-only sequence (as a video prompt of thousands of vision tokens
would be), batch 1. Each figure comes from a fresh process with MALLOC_MMAP_THRESHOLD_=65536 (freed
blocks go back to the system) and is the rise of the peak resident set (VmHWM) over the resident
set before the call; "grad" adds the backward pass. On CUDA it is ``max_memory_allocated``.

usage: python benchmarks/logprob_memory.py [--prompt 4096] [--response 256] [--out benchmarks/results/cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from step_phases import _rss_kib  # benchmarks/: the script's own folder

VOCAB = 152_064  # Qwen2.5-VL's vocabulary
VARIANTS = ("full_logits", "lean")


def _model_and_generation(prompt: int, response: int, device: str):
    from transformers import AutoModelForImageTextToText

    from vidrl.models.tiny import ARCHS, _ids, _special, build_tokenizer
    from vidrl.types import Generation

    tok = build_tokenizer()
    config = ARCHS["qwen2_5_vl"].config({**_ids(tok), "text": _special(tok)}, VOCAB)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config).to(device)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 400, (1, prompt), generator=g).to(device)
    resp = torch.randint(100, 400, (1, response), generator=g).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return model, Generation(batch, resp, torch.ones_like(resp))


def full_logits(model, gen: object) -> torch.Tensor:
    """The path before: logits [b, L + T, V] for every position, sliced to the response."""
    from vidrl import ops

    ids = torch.cat([gen.prompt["input_ids"], gen.response_ids], 1)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    logits = logits[:, gen.prompt["input_ids"].shape[1] - 1 : -1]
    keep = gen.response_mask.bool()
    return ops.token_logprobs(logits[keep], gen.response_ids[keep])


def measure(variant: str, grad: bool, prompt: int, response: int) -> dict[str, float]:
    """Peak extra MiB (and seconds) of one log-prob call of ``variant``."""
    import time

    import vidrl

    cuda = torch.cuda.is_available()
    model, gen = _model_and_generation(prompt, response, "cuda" if cuda else "cpu")
    fn = full_logits if variant == "full_logits" else (lambda m, g: vidrl.sequence_logprobs(m, g))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        start = _rss_kib("VmRSS") * 1024
    t = time.perf_counter()
    with torch.set_grad_enabled(grad):
        lp = fn(model, gen)
        if grad:
            lp.sum().backward()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024
    return {"peak_mib": max(0, peak - start) / 2**20, "seconds": seconds, "sum": float(lp.sum())}


def _in_fresh_process(variant: str, grad: bool, prompt: int, response: int) -> dict[str, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    cmd = [sys.executable, __file__, "--one", variant, "--prompt", str(prompt), "--response", str(response)]
    out = subprocess.run(
        cmd + (["--grad"] if grad else []), env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    c = result["config"]
    lines = [
        f"# Log-prob forward peak memory ({result['device']})",
        "",
        f"Tiny Qwen2.5-VL architecture, V = {VOCAB:,}, prompt {c['prompt']} tokens + response "
        f"{c['response']}, batch 1. Command: `python benchmarks/logprob_memory.py`.",
        "",
        "| pass | full logits (MiB) | lean (MiB) | ratio | full (s) | lean (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in ("no_grad", "grad"):
        f, le = result[mode]["full_logits"], result[mode]["lean"]
        ratio = f["peak_mib"] / max(le["peak_mib"], 1e-9)
        lines.append(f"| {mode} | {f['peak_mib']:.0f} | {le['peak_mib']:.0f} | {ratio:.1f}× "
                     f"| {f['seconds']:.2f} | {le['seconds']:.2f} |")  # fmt: skip
    return "\n".join(lines + [""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--response", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu")
    ap.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--grad", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.grad, args.prompt, args.response)))
        return
    result = {
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"cpu ({platform.machine()})",
        "config": {"prompt": args.prompt, "response": args.response, "vocab": VOCAB},
    }
    for mode, grad in (("no_grad", False), ("grad", True)):
        result[mode] = {v: _in_fresh_process(v, grad, args.prompt, args.response) for v in VARIANTS}
        f, le = result[mode]["full_logits"]["sum"], result[mode]["lean"]["sum"]
        assert abs(f - le) <= 1e-3 * abs(f), f"the two paths disagree: {f} vs {le}"  # same numbers
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logprob-memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "logprob-memory.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
