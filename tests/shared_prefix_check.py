"""The comparison every shared-prefix test makes: the same log-probs and gradients from the
per-row forward and from the shared-prefix one (fp32, 1e-5, each gradient scaled by its largest
entry when that exceeds 1)."""

from __future__ import annotations

import torch

from vidrl.engine.rollout import sequence_logprobs


def assert_shared_prefix_exact(model, gen, rows, weights, temperature=1.0):
    """Run both forwards on rows ``rows`` of ``gen``, backpropagate Σ lp · ``weights`` [b, T]
    through each, assert equal log-probs and gradients; return the per-row (log-probs [b, T],
    {name: gradient}) for further checks."""
    out = {}
    for share in (False, True):
        model.zero_grad()
        lp = sequence_logprobs(model, gen, rows, temperature=temperature, share_prefix=share)
        (lp * weights.to(lp.dtype)).sum().backward()
        out[share] = (
            lp.detach(),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )
    (lp0, g0), (lp1, g1) = out[False], out[True]
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=0)
    assert g0.keys() == g1.keys() and g0
    for name, grad in g0.items():
        scale = grad.abs().max().clamp_min(1.0)
        torch.testing.assert_close(g1[name] / scale, grad / scale, atol=1e-5, rtol=0, msg=name)
    return lp1, g1
