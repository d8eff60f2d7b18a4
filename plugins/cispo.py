"""CISPO (MiniMax-M1, arXiv 2506.13585): every token keeps its gradient; the importance weight
is clipped and stopped, instead of the update: −sg(clip(r_{i,t}, 1 − ε_low, 1 + ε_high)) · Â ·
log π_θ(o_{i,t}), a token mean over the optimizer step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import vidrl
from vidrl import ops


class CISPO(vidrl.PolicyLoss):
    """Per token −sg(clip(r, 1 − ε_low, 1 + ε_high))·Â·log π_θ, r = π_θ / π_old [b, T], Â [b] or
    [b, T], summed over the step's trained tokens (``mask`` [b, T]) and divided by their count
    (``vidrl.ops.aggregate`` ``token_mean``).
    ``eps_low`` None: no lower bound (the paper's practice); ``eps_high`` the upper one. Metrics:
    ``clip_frac`` (tokens whose weight was clipped), ``ratio``."""

    name = "cispo"

    @dataclass(frozen=True)
    class Config:
        eps_low: float | None = None
        eps_high: float = 0.28

        def __post_init__(self) -> None:
            if (self.eps_low is not None and not 0 <= self.eps_low < 1) or self.eps_high < 0:
                raise ValueError(f"need 0 <= eps_low < 1 (or None) and eps_high >= 0; got {self}")

    requires = frozenset({vidrl.Need.OLD_LOGPROBS})

    def __call__(self, inputs: vidrl.LossInputs) -> vidrl.LossOutput:
        c, lp, mask = self.config, inputs.logprobs, inputs.mask
        adv = inputs.advantages if inputs.advantages.dim() == 2 else inputs.advantages[:, None]
        ratio = torch.exp(lp.detach() - inputs.old_logprobs)
        low = 0.0 if c.eps_low is None else 1 - c.eps_low
        weight = ratio.clamp(low, 1 + c.eps_high)
        per_token = -weight * adv * lp
        loss = ops.aggregate(per_token, mask, "token_mean", inputs.step_tokens, inputs.step_sequences)
        metrics = {
            "clip_frac": ops.masked_mean((weight != ratio).to(lp.dtype), mask),
            "ratio": ops.masked_mean(ratio, mask),
        }
        return vidrl.LossOutput(loss, metrics)


@vidrl.hookimpl
def register_policy_losses(register):
    register(CISPO)
