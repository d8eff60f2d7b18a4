"""The one tolerance table of the primitive tests, against float64 references.

Forward outputs are float32 for every input dtype (the maths is float32 on upcast loads), so the
forward tolerance does not depend on the input dtype, only on the logit scale: log-sum-exp of
logits of size S is rounded to about 2⁻²³·S, hence atol grows with S (±1e4 logits → ~1e-3).
Gradients are stored in the input dtype, so their tolerance is that dtype's rounding (half an ulp:
2⁻⁹ for bfloat16, 2⁻¹² for float16) plus the same scale term.
"""

from __future__ import annotations

import torch

EPS32 = 2.0**-23
GRAD_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def forward_tol(dtype: torch.dtype, scale: float) -> dict[str, float]:
    """``scale``: the largest |logit / T| in the test."""
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10 * max(1.0, scale)}
    return {"rtol": 1e-5, "atol": 1e-5 + 8 * EPS32 * scale}


def grad_tol(dtype: torch.dtype, scale: float) -> dict[str, float]:
    return {"rtol": GRAD_RTOL[dtype], "atol": 1e-6 + 8 * EPS32 * scale}


def assert_close_norm(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """‖actual − expected‖ ≤ rel · ‖expected‖, for matmul outputs whose elementwise error is
    relative to the row norm rather than to each element."""
    err = (actual.double() - expected.double()).norm()
    ref = expected.double().norm()
    assert err <= rel * ref + 1e-12, f"relative error {float(err / ref):.3g} > {rel:.3g}"
