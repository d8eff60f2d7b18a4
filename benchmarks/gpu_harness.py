"""GPU benchmark harness for the vidrl kernels (needs CUDA and triton).

For each primitive at the issue's target shape (N = 32768 tokens, V = 152064, H = 3584, bf16;
512 rewards in groups of 8), it reports median / p20 / p80 milliseconds from
``triton.testing.do_bench``, achieved GB/s as a share of the device's measured copy bandwidth
(token_logprobs), TFLOP/s as a share of measured bf16 matmul throughput (linear_token_logprobs),
and peak extra memory, for vidrl's Triton kernel against torch eager, torch.compile and
Liger-Kernel when installed. It first runs tests/kernels with ``-m "not slow"`` on this device and
refuses to report if any fails.

    python benchmarks/gpu_harness.py [--out benchmarks/results] [--quick]

Results land as JSON, CSV and a markdown table under ``benchmarks/results/<device>/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object]) -> dict[str, float]:
    from triton.testing import do_bench

    ms = do_bench(fn, warmup=25, rep=200, quantiles=[0.5, 0.2, 0.8])
    return {"median_ms": ms[0], "p20_ms": ms[1], "p80_ms": ms[2]}


def peak_extra_mb(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def copy_bandwidth_gbs() -> float:
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x))["median_ms"]
    return 2 * x.numel() / ms / 1e6


def matmul_tflops() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = timed(lambda: a @ b)["median_ms"]
    return 2 * 8192**3 / ms / 1e9


def correctness_gate() -> None:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        str(ROOT / "tests" / "kernels"),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"refusing to report: the kernel tests fail on this device\n{out.stdout[-4000:]}")
    print(f"kernel tests on this device: {out.stdout.strip().splitlines()[-1]}")


def _liger_logprobs():
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy
    except ImportError:
        return None
    return lambda logits, targets: -liger_cross_entropy(logits, targets, reduction="none")


def bench_token_logprobs(n: int, v: int, bandwidth: float) -> list[dict]:
    from vidrl.kernels.logprobs import token_logprobs

    logits = torch.randn(n, v, device="cuda", dtype=torch.bfloat16)
    targets = torch.randint(0, v, (n,), device="cuda")

    def eager(x, t):
        return torch.log_softmax(x.float(), -1).gather(1, t[:, None]).squeeze(1)

    variants = {"vidrl_triton": token_logprobs, "torch_eager": eager, "torch_compile": torch.compile(eager)}
    if _liger_logprobs() is not None:
        variants["liger"] = _liger_logprobs()
    rows = []
    nbytes = logits.numel() * logits.element_size()
    for name, fn in variants.items():
        fwd = timed(lambda fn=fn: fn(logits, targets))
        x = logits.clone().requires_grad_(True)

        def fwd_bwd(fn=fn, x=x):
            fn(x, targets).sum().backward()
            x.grad = None

        both = timed(fwd_bwd)
        rows.append({
            "primitive": "token_logprobs", "variant": name, "shape": f"N={n} V={v} bf16",
            **{f"fwd_{k}": val for k, val in fwd.items()}, **{f"fwd_bwd_{k}": val for k, val in both.items()},
            "fwd_GBps": nbytes / fwd["median_ms"] / 1e6,
            "fwd_share_of_copy_bw": nbytes / fwd["median_ms"] / 1e6 / bandwidth,
            # forward reads the logits, backward reads them again and writes the gradient
            "fwd_bwd_share_of_copy_bw": 3 * nbytes / both["median_ms"] / 1e6 / bandwidth,
            "peak_extra_MB": peak_extra_mb(fwd_bwd), "logits_MB": nbytes / 2**20,
        })  # fmt: skip
        del x
    return rows


def bench_linear(n: int, v: int, h: int, tflops: float) -> list[dict]:
    from vidrl.kernels.linear_logprobs import linear_token_logprobs

    hidden = torch.randn(n, h, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    weight = (torch.randn(v, h, device="cuda", dtype=torch.bfloat16) / h**0.5).requires_grad_(True)
    targets = torch.randint(0, v, (n,), device="cuda")

    def eager(hs, w, t):
        return torch.log_softmax((hs @ w.T).float(), -1).gather(1, t[:, None]).squeeze(1)

    rows = []
    for name, fn in {"vidrl_triton": linear_token_logprobs, "torch_eager": eager}.items():

        def fwd_bwd(fn=fn):
            fn(hidden, weight, targets).sum().backward()
            hidden.grad = weight.grad = None

        try:
            t = timed(fwd_bwd)
            mem = peak_extra_mb(fwd_bwd)
        except torch.OutOfMemoryError:
            rows.append({"primitive": "linear_token_logprobs", "variant": name, "error": "out of memory"})
            continue
        flops = 4 * 2 * n * h * v  # forward, recompute, d_hidden, d_weight
        rows.append({
            "primitive": "linear_token_logprobs", "variant": name, "shape": f"N={n} V={v} H={h} bf16",
            **{f"fwd_bwd_{k}": val for k, val in t.items()},
            "TFLOPs": flops / t["median_ms"] / 1e9, "share_of_matmul": flops / t["median_ms"] / 1e9 / tflops,
            "peak_extra_MB": mem,
        })  # fmt: skip
    return rows


def bench_group_advantages(b: int, g: int) -> list[dict]:
    from vidrl.kernels.advantages import group_advantages
    from vidrl.ops.advantages import group_advantages as reference

    rewards = torch.rand(b, device="cuda")
    variants = {
        "vidrl_triton": group_advantages,
        "torch_eager": reference,
        "torch_compile": torch.compile(reference),
    }
    return [
        {
            "primitive": "group_advantages",
            "variant": name,
            "shape": f"B={b} G={g}",
            **timed(lambda fn=fn: fn(rewards, group_size=g)),
        }  # fmt: skip
        for name, fn in variants.items()
    ]


def write(rows: list[dict], device: str, out: Path, machine: dict) -> Path:
    folder = out / re.sub(r"[^A-Za-z0-9_.-]+", "_", device)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernels.json").write_text(json.dumps({"device": device, **machine, "rows": rows}, indent=2))
    keys = sorted({k for r in rows for k in r})
    with open(folder / "kernels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    lines = [f"# Kernel benchmarks on {device}", "", *(f"- {k}: {v:.1f}" for k, v in machine.items()), ""]
    cols = [
        "primitive", "variant", "shape", "fwd_median_ms", "fwd_bwd_median_ms", "median_ms",
        "fwd_share_of_copy_bw", "fwd_bwd_share_of_copy_bw", "share_of_matmul", "peak_extra_MB",
    ]  # fmt: skip
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    (folder / "kernels.md").write_text("\n".join(lines) + "\n")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--quick", action="store_true", help="smaller shapes (N = 4096) for a smoke run")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("the GPU harness needs CUDA; on a CPU use: pytest benchmarks/test_cpu_logprobs.py")
    correctness_gate()
    n = 4096 if args.quick else 32768
    machine = {"copy_GBps": copy_bandwidth_gbs(), "bf16_matmul_TFLOPs": matmul_tflops()}
    rows = bench_token_logprobs(n, 152064, machine["copy_GBps"])
    rows += bench_linear(n, 152064, 3584, machine["bf16_matmul_TFLOPs"])
    rows += bench_group_advantages(512, 8)
    folder = write(rows, torch.cuda.get_device_name(), args.out, machine)
    print((folder / "kernels.md").read_text())


if __name__ == "__main__":
    main()
