"""Policy loss ``reinforce``: plain REINFORCE, A · log π, token-mean over the optimizer step."""

from __future__ import annotations

import vidrl


class Reinforce(vidrl.PolicyLoss):
    """L = −Σ_t A · log π_θ(y_t) · mask / step_tokens. No ratio, so it declares no need: the
    engine computes no old log-probs and loads no reference model for it. Shapes: logprobs,
    mask [b, T]; advantages [b] or [b, T]; returns a scalar."""

    name = "reinforce"

    def __call__(self, inputs: vidrl.LossInputs) -> vidrl.LossOutput:
        adv = inputs.advantages if inputs.advantages.dim() == 2 else inputs.advantages[:, None]
        loss = -(adv * inputs.logprobs * inputs.mask).sum() / max(inputs.step_tokens, 1.0)
        return vidrl.LossOutput(loss, {"reinforce/adv_mean": float(inputs.advantages.mean())})
