"""The GRPO family (GRPO arXiv:2402.03300, Dr. GRPO arXiv:2503.20783, RLOO arXiv:2402.14740;
docs/algorithms.md, 'GRPO family — specification'): the advantage estimators GRPO, Dr. GRPO and
RLOO (thin configurations of ``vidrl.ops.group_advantages``) and their policy loss, PPO-clip with a
KL penalty to the reference model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

import vidrl
from vidrl import ops

Singleton = Literal["zero", "raw"]


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def _advantages(rewards: torch.Tensor, group_ids: torch.Tensor, **kwargs: object) -> vidrl.Advantages:
    adv, zero_std = ops.group_advantages(rewards, group_ids, **kwargs)
    return vidrl.Advantages(adv, zero_std, torch.ones_like(zero_std, dtype=adv.dtype))


class GRPO(vidrl.AdvantageEstimator):
    """A_i = (R_i − mean_g R) / (std_g R + eps), or R_i − mean_g R when ``scale_std`` is off; with
    ``std_scope: batch`` the std is the whole batch's (TRL's ``scale_rewards: batch``).

    Defaults follow verl's statistics (unbiased std, eps 1e-6) with TRL's singleton rule (A = 0);
    ``eps: 1e-4`` gives TRL's, ``singleton: raw`` verl's singleton rule. Shapes: [B] → [B].
    """

    name = "grpo"

    @dataclass(frozen=True)
    class Config:
        scale_std: bool = True
        std: Literal["unbiased", "biased"] = "unbiased"
        eps: float = 1e-6
        singleton: Singleton = "zero"
        std_scope: Literal["group", "batch"] = "group"

        def __post_init__(self) -> None:
            _check_eps(self.eps)

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        c = self.config
        if c.scale_std and c.std_scope == "batch":  # centred per group, scaled by the batch's std
            out = _advantages(rewards, group_ids, mode="mean", singleton=c.singleton)
            r = rewards.to(out.advantages.dtype)
            r = r[~torch.isnan(r)]  # the scored samples' rewards
            std = r.std(unbiased=c.std == "unbiased") if r.numel() > 1 else r.new_zeros(())
            return vidrl.Advantages(out.advantages / (std + c.eps), out.zero_std, out.group_weights)
        mode = "mean_std" if c.scale_std else "mean"
        return _advantages(rewards, group_ids, mode=mode, std=c.std, eps=c.eps, singleton=c.singleton)


class _CentredOnly(vidrl.AdvantageEstimator):
    """An estimator with a fixed ``mode`` of the primitive and only the singleton rule to choose."""

    mode: ClassVar[str]

    @dataclass(frozen=True)
    class Config:
        singleton: Singleton = "zero"

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> vidrl.Advantages:
        return _advantages(rewards, group_ids, mode=self.mode, singleton=self.config.singleton)


class DrGRPO(_CentredOnly):
    """Dr. GRPO: A_i = R_i − mean_g R (no std scaling). Shapes: [B] → [B]."""

    name = "dr_grpo"
    mode = "mean"


class RLOO(_CentredOnly):
    """RLOO: A_i = R_i − mean_{j≠i} R_j over the group. Shapes: [B] → [B]."""

    name = "rloo"
    mode = "leave_one_out"


Aggregation = Literal["token_mean", "sequence_mean", "constant", "micro_token_mean"]


class PPOClip(vidrl.PolicyLoss):
    """Per token: −min(r·A, clip(r, 1 − ε_low, 1 + ε_high)·A) + β·KL(π_θ ‖ π_ref) (the KL times r
    with ``kl_bias_correction``, TRL's default; r in the first term capped at ``delta`` when set,
    two-sided clipping), r = π_θ / π_old, aggregated over the optimizer step
    (``vidrl.ops.aggregate``). β = 0 needs no reference model. Metrics: ``clip_frac``
    (tokens whose clipped term is the active one), ``kl``, ``ratio``."""

    name = "ppo_clip"

    @dataclass(frozen=True)
    class Config:
        eps_low: float = 0.2
        eps_high: float = 0.2
        beta: float = 0.0
        kl_estimator: Literal["k1", "k2", "k3"] = "k3"
        #: multiply the per-token KL by the unclipped ratio r (TRL's ``use_bias_correction_kl``)
        kl_bias_correction: bool = False
        #: two-sided clipping: the unclipped term's ratio capped at delta (> 1 + eps_high; TRL's ``delta``)
        delta: float | None = None
        aggregation: Aggregation = "token_mean"
        max_length: int | None = None  # the constant normaliser of aggregation "constant"

        def __post_init__(self) -> None:
            if not (0 <= self.eps_low < 1 and self.eps_high >= 0 and self.beta >= 0):
                raise ValueError(f"need 0 <= eps_low < 1, eps_high >= 0, beta >= 0; got {self}")
            if self.delta is not None and not self.delta > 1 + self.eps_high:
                raise ValueError(f"delta must be > 1 + eps_high ({1 + self.eps_high}), got {self.delta}")
            if self.aggregation == "constant" and not (self.max_length and self.max_length > 0):
                raise ValueError("aggregation 'constant' needs max_length > 0 (the generation budget)")

    def needs(self) -> frozenset[vidrl.Need]:
        ref = {vidrl.Need.REFERENCE_MODEL} if self.config.beta > 0 else set()
        return frozenset({vidrl.Need.OLD_LOGPROBS, *ref})

    def policy_tokens(self, inputs: vidrl.LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """The tokens [b, T] the clipped policy term trains (every trained token here; a subclass
        may keep fewer), and metrics about the choice."""
        return inputs.mask, {}

    def __call__(self, inputs: vidrl.LossInputs) -> vidrl.LossOutput:
        c = self.config
        lp, mask = inputs.logprobs, inputs.mask
        adv = inputs.advantages if inputs.advantages.dim() == 2 else inputs.advantages[:, None]
        ratio = torch.exp(lp - inputs.old_logprobs)
        unclipped = (ratio if c.delta is None else ratio.clamp(max=c.delta)) * adv
        clipped = ratio.clamp(1 - c.eps_low, 1 + c.eps_high) * adv
        policy_mask, metrics = self.policy_tokens(inputs)
        loss = self._aggregate(-torch.minimum(unclipped, clipped), policy_mask, inputs)
        if c.beta > 0:  # over every trained token, whichever the policy term keeps
            kl = ops.kl_penalty(lp, inputs.ref_logprobs, c.kl_estimator)
            loss = loss + c.beta * self._aggregate(kl * ratio if c.kl_bias_correction else kl, mask, inputs)
            metrics["kl"] = ops.masked_mean(kl.detach(), mask)
        metrics["clip_frac"] = ops.masked_mean((clipped < unclipped).float(), policy_mask)
        metrics["ratio"] = ops.masked_mean(ratio.detach(), mask)
        return vidrl.LossOutput(loss, metrics)

    def _aggregate(
        self, per_token: torch.Tensor, mask: torch.Tensor, inputs: vidrl.LossInputs
    ) -> torch.Tensor:
        c = self.config
        return ops.aggregate(per_token, mask, c.aggregation, inputs.step_tokens, inputs.step_sequences,
                             c.max_length, inputs.step_micro_batches)  # fmt: skip


@vidrl.hookimpl
def register_policy_losses(register):
    register(PPOClip)


@vidrl.hookimpl
def register_advantage_estimators(register):
    register(GRPO)
    register(DrGRPO)
    register(RLOO)
