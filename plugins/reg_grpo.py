"""Reg-GRPO, regressive GRPO (DeepVideo-R1, arXiv:2506.07464; docs/algorithms.md,
'Reg-GRPO — specification'), as the policy loss ``reg_grpo``.

The policy's sequence log-ratio to the rollout policy, ρ_i = Σ_t (log π_θ − log π_old), is
normalised within its group and regressed onto the detached group-normalised reward advantage Â_i
(the run's ``grpo`` estimator) with squared error, plus β·KL to the reference; no ratio, no
clipping:  L = mean_i (Â_i − (ρ_i − μ_ρ) / σ_ρ)² + β · KL.

The degenerate case: on fresh rollouts π_θ = π_old, so every ρ_i = 0 and std(ρ) = 0. vidrl takes
σ_ρ = sqrt(var_ρ + eps) (option ``eps``; population variance over the group): the loss is then
finite, equals mean Â², and its gradient is finite (∂σ/∂var at 0 is 1 / (2 sqrt(eps)), and
∂var/∂ρ is 0 at ρ = μ), pushing ρ_i − μ_ρ towards sqrt(eps) · Â_i. For an informative ρ, take
several optimizer steps per rollout batch (the ``rl`` stage's ``num_iterations``): π_old then lags
the policy by those steps. Groups whose rewards are all equal have Â = 0, so they pull ρ towards
its group mean. Every micro-batch must hold whole groups (``Need.WHOLE_GROUPS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import vidrl
from vidrl import ops


def normalised_log_ratio(rho: torch.Tensor, group_ids: torch.Tensor, eps: float) -> torch.Tensor:
    """(ρ − mean_g ρ) / sqrt(var_g ρ + eps) per group (population variance). [b] → [b]."""
    inverse, n = ops.group_index(rho.numel(), group_ids)
    inverse = inverse.to(rho.device)
    count = rho.new_zeros(n).index_add(0, inverse, torch.ones_like(rho))
    mean = rho.new_zeros(n).index_add(0, inverse, rho) / count
    dev = rho - mean[inverse]
    var = rho.new_zeros(n).index_add(0, inverse, dev * dev) / count
    return dev / torch.sqrt(var[inverse] + eps)


class RegGRPO(vidrl.PolicyLoss):
    """mean_i (Â_i − Â_θ,i)² + β·KL(π_θ ‖ π_ref): Â the detached advantage [b] (use ``grpo``),
    Â_θ the group-normalised sequence log-ratio to π_old. The squared error is averaged over the
    step's sequences, the KL over its tokens (``kl_aggregation``). Metrics: ``kl``,
    ``reg/rho_std`` (mean within-group std of ρ: 0 on fresh rollouts), ``reg/mse``."""

    name = "reg_grpo"

    @dataclass(frozen=True)
    class Config:
        beta: float = 0.1
        eps: float = 1e-6
        kl_estimator: Literal["k1", "k2", "k3"] = "k3"
        kl_aggregation: Literal["token_mean", "sequence_mean"] = "token_mean"

        def __post_init__(self) -> None:
            if not (self.beta >= 0 and self.eps > 0):
                raise ValueError(f"need beta >= 0 and eps > 0 (it keeps σ_ρ > 0), got {self}")

    def needs(self) -> frozenset[vidrl.Need]:
        ref = {vidrl.Need.REFERENCE_MODEL} if self.config.beta > 0 else set()
        return frozenset({vidrl.Need.OLD_LOGPROBS, vidrl.Need.WHOLE_GROUPS, *ref})

    token_advantages = False  # ρ is a sequence-level quantity

    def __call__(self, inputs: vidrl.LossInputs) -> vidrl.LossOutput:
        c = self.config
        if inputs.advantages.dim() != 1:
            raise ValueError(
                f"reg_grpo regresses sequence advantages [b], got {list(inputs.advantages.shape)}"
            )
        m = inputs.mask.to(inputs.logprobs.dtype)
        rho = ((inputs.logprobs - inputs.old_logprobs) * m).sum(-1)
        pred = normalised_log_ratio(rho, inputs.group_ids, c.eps)
        sq = (inputs.advantages.detach().to(pred.dtype) - pred) ** 2
        loss = sq.sum() / max(inputs.step_sequences, 1.0)
        metrics = {
            "reg/mse": float(sq.detach().mean()),
            "reg/rho_std": _group_std(rho.detach(), inputs.group_ids),
        }
        if c.beta > 0:
            kl = ops.kl_penalty(inputs.logprobs, inputs.ref_logprobs, c.kl_estimator)
            loss = loss + c.beta * ops.aggregate(kl, inputs.mask, c.kl_aggregation, inputs.step_tokens,
                                                 inputs.step_sequences)  # fmt: skip
            metrics["kl"] = float((kl.detach() * m).sum() / m.sum().clamp(min=1))
        return vidrl.LossOutput(loss, metrics)


def _group_std(rho: torch.Tensor, group_ids: torch.Tensor) -> float:
    inverse, n = ops.group_index(rho.numel(), group_ids)
    _, _, std, _ = ops.group_stats(rho.float(), inverse, n, "biased")
    return float(std.mean())


@vidrl.hookimpl
def register_policy_losses(register):
    register(RegGRPO)
