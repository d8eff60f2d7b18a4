"""Independent float64 references for primitive tests: straight-line maths, nothing shared with
the code under test."""

from __future__ import annotations

import math

import torch


def group_advantages(rewards, ids, mode, std, eps, singleton):
    """Loop over groups (docs/algorithms.md, 'GRPO family — specification') → (advantages [B]
    float64, zero_std [num_groups]); a NaN reward is left out of its group and gets 0."""
    r = rewards.double().tolist()
    ids = ids.tolist()
    out = [0.0] * len(r)
    zero = []
    for g in sorted(set(ids)):
        idx = [i for i, x in enumerate(ids) if x == g and not math.isnan(r[i])]  # NaN: unscored
        vals = [r[i] for i in idx]
        k = len(vals)
        mu = sum(vals) / k if k else 0.0
        equal = k == 0 or max(vals) == min(vals)
        zero.append(equal)
        for i in idx:
            if k == 1 and singleton == "raw":
                out[i] = r[i] / (1 + eps) if mode == "mean_std" else r[i]
            elif equal:
                out[i] = 0.0
            elif mode == "mean":
                out[i] = r[i] - mu
            elif mode == "leave_one_out":
                out[i] = r[i] - (sum(vals) - r[i]) / (k - 1)
            else:
                var = sum((v - mu) ** 2 for v in vals) / (k - 1 if std == "unbiased" else k)
                out[i] = (r[i] - mu) / (math.sqrt(var) + eps)
    return torch.tensor(out, dtype=torch.float64), torch.tensor(zero, dtype=torch.bool)


def token_logprobs(logits, targets, temperature=1.0, ignore_index=-100):
    """float64 log_softmax-gather and entropy, differentiable, from the same (rounded) logits."""
    z = logits.double() / temperature
    logp = torch.log_softmax(z, dim=-1)
    valid = targets != ignore_index
    lp = logp.gather(1, targets.clamp(min=0).long()[:, None]).squeeze(1)
    finite_z = torch.where(torch.isinf(z), torch.zeros_like(z), z)  # −inf logits carry p = 0
    ent = torch.logsumexp(z, -1) - (logp.exp() * finite_z).sum(-1)
    zero = torch.zeros_like(lp)
    return torch.where(valid, lp, zero), torch.where(valid, ent, zero)
