"""High-entropy token training ("Beyond the 80/20 rule", arXiv 2506.01939) as the policy loss
``high_entropy``: PPO-clip whose policy-gradient term trains only the top-ρ fraction of each
micro-batch's response tokens by entropy (the "forking" tokens); the entropies come from the
update's own forward (``Need.ENTROPY``), no second forward. docs/algorithms.md, 'High-entropy
token training'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import vidrl
from vidrl import ops
from vidrl.plugins.grpo_family import PPOClip


class HighEntropy(PPOClip):
    """``ppo_clip`` (every option of it) with the clipped policy term kept on the ⌈ρ·N⌉ tokens of
    highest entropy among the N trained tokens of the micro-batch (per rank, as the released
    code does; ``vidrl.ops.top_fraction``). The KL term still covers every trained token. The
    normaliser is the aggregation's: ``micro_token_mean`` divides by the tokens kept (the
    released code), ``token_mean`` by every trained token of the step (TRL's
    ``top_entropy_quantile``). Metrics: ``entropy/kept_mean`` (the engine logs ``entropy``, the
    mean over every trained token), ``entropy/kept_frac``."""

    name = "high_entropy"

    @dataclass(frozen=True)
    class Config(PPOClip.Config):
        rho: float = 0.2

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0 < self.rho <= 1:
                raise ValueError(f"rho must be in (0, 1] (the fraction of tokens trained), got {self.rho}")

    def needs(self) -> frozenset[vidrl.Need]:
        return super().needs() | {vidrl.Need.ENTROPY}

    def policy_tokens(self, inputs: vidrl.LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """The top-ρ tokens [b, T] by ``inputs.entropies`` among ``inputs.mask``."""
        ent, mask = inputs.entropies, inputs.mask
        kept = ops.top_fraction(ent, mask, self.config.rho).to(mask.dtype)
        metrics = {
            "entropy/kept_mean": ops.masked_mean(ent, kept),
            "entropy/kept_frac": float(kept.sum() / mask.sum().clamp(min=1)),
        }
        return kept, metrics


@vidrl.hookimpl
def register_policy_losses(register):
    register(HighEntropy)
