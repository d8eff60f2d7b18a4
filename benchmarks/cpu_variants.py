"""Token log-prob variants for the CPU benchmark, and their peak memory.

``python benchmarks/cpu_variants.py NAME`` builds the inputs, runs NAME forward + backward once
and prints its peak RSS (VmHWM) in bytes (NAME ``baseline`` only builds the inputs), so that each variant's
peak is measured in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from vidrl.ops import logprobs as ref

N, V = 2048, 32_000  # 250 MB of float32 logits: big enough to show the [N, V] temporaries


def gather(logits, targets):
    return torch.log_softmax(logits.float(), -1).gather(1, targets[:, None]).squeeze(1)


def row_loop(logits, targets):
    """Selective log-softmax one row at a time (TRL's memory-saving fallback)."""
    return torch.stack(
        [torch.log_softmax(row.float(), -1)[t] for row, t in zip(logits, targets, strict=True)]
    )


def vidrl_reference(logits, targets):
    return ref.token_logprobs(logits, targets)


VARIANTS = {
    "vidrl_reference": vidrl_reference,
    "log_softmax_gather": gather,
    "row_loop": row_loop,
}


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, V, generator=g) * 2, torch.randint(0, V, (N,), generator=g)


def fwd_bwd(fn, logits, targets):
    x = logits.detach().requires_grad_(True)
    lp = fn(x, targets)
    lp.sum().backward()
    return lp, x.grad


def peak_extra_bytes(name: str) -> int:
    """Peak RSS of a fresh process running ``name`` minus that of one only building the inputs."""

    def peak(which: str) -> int:
        out = subprocess.run([sys.executable, __file__, which], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"peak-memory child for {which!r} failed:\n{out.stderr[-2000:]}")
        return int(out.stdout.strip().splitlines()[-1])

    return peak(name) - peak("baseline")


if __name__ == "__main__":
    which = sys.argv[1]
    logits, targets = inputs()
    if which != "baseline":
        fwd_bwd(VARIANTS[which], logits, targets)
    # VmHWM, not ru_maxrss: ru_maxrss carries over the forking parent's peak across exec
    hwm = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:"))
    print(int(hwm.split()[1]) * 1024)
