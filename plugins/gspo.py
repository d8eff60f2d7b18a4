"""GSPO (Group Sequence Policy Optimization, arXiv 2507.18071): the importance ratio and its
clipping at the level of whole sequences, s_i = exp((1/|o_i|) Σ_t log r_{i,t}), instead of per
token; and its token-level variant (GSPO-token), which takes per-token advantages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import vidrl


class GSPO(vidrl.PolicyLoss):
    """Per sequence i of the step: −min(s_i·Â_i, clip(s_i, 1 − ε_low, 1 + ε_high)·Â_i), averaged
    over the step's sequences, s_i = exp(mean over i's tokens of log π_θ − log π_old) [b]. With
    ``variant: token`` (GSPO-token), per token −min(s_{i,t}·Â_{i,t}, clip(s_{i,t})·Â_{i,t}),
    s_{i,t} = sg[s_i] · π_θ(o_{i,t}) / sg[π_θ(o_{i,t})], averaged over i's tokens, then over the
    step's sequences: with sequence advantages the same value and gradient as GSPO, and it also
    takes per-token advantages [b, T]. Metrics: ``clip_frac`` (sequences, or tokens, whose clipped
    term is the active one), ``seq_ratio`` (mean s_i). Defaults: the paper's ε (3e-4, 4e-4)."""

    name = "gspo"

    @dataclass(frozen=True)
    class Config:
        eps_low: float = 3e-4
        eps_high: float = 4e-4
        variant: Literal["sequence", "token"] = "sequence"

        def __post_init__(self) -> None:
            if not (0 <= self.eps_low < 1 and self.eps_high >= 0):
                raise ValueError(f"need 0 <= eps_low < 1 and eps_high >= 0; got {self}")

    requires = frozenset({vidrl.Need.OLD_LOGPROBS})

    @property
    def token_advantages(self) -> bool:  # type: ignore[override]
        """Per-token advantages [b, T] are taken by GSPO-token only."""
        return self.config.variant == "token"

    def __call__(self, inputs: vidrl.LossInputs) -> vidrl.LossOutput:
        c, lp, mask = self.config, inputs.logprobs, inputs.mask.to(inputs.logprobs.dtype)
        lengths = mask.sum(-1).clamp(min=1)  # [b]
        seq = torch.exp(((lp - inputs.old_logprobs) * mask).sum(-1) / lengths)  # s_i [b]
        adv = inputs.advantages
        if c.variant == "sequence":
            if adv.dim() != 1:
                raise ValueError("gspo (variant sequence) takes one advantage per sequence; "
                                 "per-token advantages need variant: token")  # fmt: skip
            ratio, a = seq, adv
        else:  # sg[s_i] · π_θ / sg[π_θ]: the value of s_i, each token's own gradient
            ratio = seq.detach()[:, None] * torch.exp(lp - lp.detach())
            a = adv if adv.dim() == 2 else adv[:, None]
        unclipped, clipped = ratio * a, ratio.clamp(1 - c.eps_low, 1 + c.eps_high) * a
        per = -torch.minimum(unclipped, clipped)
        if c.variant == "token":
            per = (per * mask).sum(-1) / lengths  # [b]: the token mean of each sequence
        has = (mask.sum(-1) > 0).to(per.dtype)  # a sequence with no trained token adds nothing
        loss = (per * has).sum() / inputs.step_sequences
        active = (clipped < unclipped).to(lp.dtype)
        frac = float(active.mean()) if c.variant == "sequence" else vidrl.ops.masked_mean(active, mask)
        return vidrl.LossOutput(loss, {"clip_frac": frac, "seq_ratio": float(seq.detach().mean())})


@vidrl.hookimpl
def register_policy_losses(register):
    register(GSPO)
