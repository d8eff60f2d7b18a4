"""CPU benchmarks of token log-probs (pytest-benchmark): vidrl's chunked reference against plain
``log_softmax(...).gather`` and a loop-over-rows selective log-softmax, forward + backward.

Each variant is first checked against float64 at the benchmark shape; a wrong variant fails
instead of reporting a time. Peak memory is measured in a fresh process per variant (see
cpu_variants.py) and attached to the benchmark's extra_info.

    vidrl bench kernels --cpu      (or: pytest benchmarks/test_cpu_logprobs.py)
"""

from __future__ import annotations

import pytest
import torch
from cpu_variants import VARIANTS, fwd_bwd, inputs, peak_extra_bytes


@pytest.mark.parametrize("name", VARIANTS)
def test_token_logprobs_fwd_bwd(benchmark, name):
    logits, targets = inputs()
    lp, grad = fwd_bwd(VARIANTS[name], logits, targets)
    x64 = logits.double().requires_grad_(True)
    exp = torch.log_softmax(x64, -1).gather(1, targets[:, None]).squeeze(1)
    exp.sum().backward()
    torch.testing.assert_close(lp.double(), exp, rtol=1e-5, atol=1e-5)  # refuse to time wrong maths
    torch.testing.assert_close(grad.double(), x64.grad, rtol=1e-5, atol=1e-6)
    benchmark.extra_info["peak_extra_MB"] = round(peak_extra_bytes(name) / 2**20, 1)
    benchmark.extra_info["logits_MB"] = round(logits.numel() * 4 / 2**20, 1)
    benchmark.pedantic(
        fwd_bwd, args=(VARIANTS[name], logits, targets), rounds=5, iterations=1, warmup_rounds=1
    )
