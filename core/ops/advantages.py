"""Pure-torch reference of the group-advantage primitive (GRPO, arXiv:2402.03300; docs/algorithms.md,
'GRPO family — specification').

Names here describe the maths, never an algorithm: ``mean_std`` (GRPO), ``mean`` (Dr. GRPO),
``leave_one_out`` (RLOO). Accelerated kernels registered under ``group_advantages`` honour
exactly this contract.
"""

from __future__ import annotations

import math

import torch

MODES = ("mean_std", "mean", "leave_one_out")
STD_KINDS = ("unbiased", "biased")
SINGLETON_RULES = ("zero", "raw")


def group_index(
    num_rewards: int, group_ids: torch.Tensor | None = None, group_size: int | None = None
) -> tuple[torch.Tensor, int]:
    """Map rollouts to dense groups: returns (inverse [B] long in [0, num_groups), num_groups).

    Give exactly one of ``group_ids`` ([B] integers, any values; groups ordered by ascending id)
    or ``group_size`` (consecutive blocks of that size; B must be a multiple).
    """
    if (group_ids is None) == (group_size is None):
        raise ValueError("give exactly one of group_ids and group_size")
    if group_size is not None:
        check_group_size(num_rewards, group_size)
        return torch.arange(num_rewards) // group_size, num_rewards // group_size
    if group_ids.dim() != 1 or group_ids.numel() != num_rewards:
        raise ValueError(f"group_ids must have shape [{num_rewards}], got {list(group_ids.shape)}")
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    uniq, inverse = torch.unique(group_ids, sorted=True, return_inverse=True)
    return inverse, int(uniq.numel())


def check_group_size(num_rewards: int, group_size: int) -> None:
    if not isinstance(group_size, int) or group_size < 1 or num_rewards % group_size:
        raise ValueError(
            f"group_size must be a positive int dividing the {num_rewards} rewards, got {group_size!r}"
        )


def check_advantage_args(rewards: torch.Tensor, mode: str, std: str, eps: float, singleton: str) -> None:
    for value, valid, what in (
        (mode, MODES, "mode"),
        (std, STD_KINDS, "std"),
        (singleton, SINGLETON_RULES, "singleton"),
    ):
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
    if rewards.dim() != 1 or not rewards.dtype.is_floating_point:
        raise ValueError(f"rewards must be a 1-D float tensor [B], got {rewards.dtype} {list(rewards.shape)}")
    if torch.isinf(rewards).any():
        bad = torch.nonzero(torch.isinf(rewards)).flatten().tolist()
        raise ValueError(f"rewards must be finite or NaN (unscored); infinite at indices {bad[:10]}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def check_weights(weights: torch.Tensor, num_groups: int) -> None:
    if weights.shape != (num_groups,):
        raise ValueError(f"weights must have shape [{num_groups}] (one per group), got {list(weights.shape)}")


def group_stats(
    rewards: torch.Tensor, inverse: torch.Tensor, num_groups: int, std: str = "unbiased"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group (count, mean, std, zero_std), each [num_groups], over the scored rewards: a NaN
    reward (an unscored sample) counts in none of them.

    ``zero_std`` is True where every scored reward of the group is exactly equal (singletons and
    groups with no scored reward included), tested by max == min rather than by a rounded std.
    Singletons under ``std="unbiased"`` get std 0.
    """
    inverse = inverse.to(rewards.device)
    scored = ~torch.isnan(rewards)
    r = torch.where(scored, rewards, 0.0)
    zeros = rewards.new_zeros(num_groups)
    count = zeros.index_add(0, inverse, scored.to(rewards.dtype))
    mean = zeros.index_add(0, inverse, r) / count.clamp(min=1)
    dev = torch.where(scored, r - mean[inverse], 0.0)
    ssq = zeros.index_add(0, inverse, dev * dev)
    dof = count - 1 if std == "unbiased" else count
    var = torch.where(dof > 0, ssq / dof.clamp(min=1), zeros)
    gmax = zeros.scatter_reduce(0, inverse, torch.where(scored, r, -math.inf), "amax", include_self=False)
    gmin = zeros.scatter_reduce(0, inverse, torch.where(scored, r, math.inf), "amin", include_self=False)
    return count, mean, var.sqrt(), (gmax == gmin) | (count == 0)


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor | None = None,
    group_size: int | None = None,
    *,
    mode: str = "mean_std",
    std: str = "unbiased",
    eps: float = 1e-6,
    singleton: str = "zero",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages of grouped rewards.

    Args:
        rewards: [B] float. Computed in at least float32; returned in that dtype. NaN marks an
            unscored sample (every reward declined to score it): it is left out of its group's
            statistics and gets advantage 0 (TRL's rule for rewards that all return None).
        group_ids / group_size: the grouping, see ``group_index``.
        mode: ``mean_std`` A = (R − μ) / (σ + eps); ``mean`` A = R − μ;
            ``leave_one_out`` A = R − mean of the other rewards = k/(k−1)·(R − μ).
        std: ``unbiased`` (k − 1 denominator) or ``biased`` (k).
        eps: added to σ in ``mean_std``.
        singleton: a group of one rollout gets A = 0 (``zero``), or is treated as μ = 0, σ = 1:
            A = R / (1 + eps) in ``mean_std`` and A = R otherwise (``raw``, verl's rule).
        weights: optional [num_groups] multiplier applied to the final advantages of each group.

    Returns:
        (advantages [B], zero_std [num_groups] bool). A group whose rewards are all equal gets
        advantage exactly 0, never NaN.
    """
    check_advantage_args(rewards, mode, std, eps, singleton)
    inverse, num_groups = group_index(rewards.numel(), group_ids, group_size)
    r = rewards.to(torch.promote_types(rewards.dtype, torch.float32))
    inverse = inverse.to(r.device)
    count, mean, sigma, zero_std = group_stats(r, inverse, num_groups, std)
    scored = ~torch.isnan(r)
    r = torch.where(scored, r, 0.0)
    dev = r - mean[inverse]
    if mode == "mean_std":
        adv = dev / (sigma[inverse] + eps)
    elif mode == "mean":
        adv = dev
    else:
        k = count[inverse]
        adv = dev * k / (k - 1).clamp(min=1)
    adv = torch.where(zero_std[inverse], torch.zeros_like(adv), adv)
    if singleton == "raw":
        raw = r / (1 + eps) if mode == "mean_std" else r
        adv = torch.where(count[inverse] == 1, raw, adv)
    adv = torch.where(scored, adv, 0.0)
    if weights is not None:
        if weights.shape != (num_groups,):
            raise ValueError(
                f"weights must have shape [{num_groups}] (one per group), got {list(weights.shape)}"
            )
        adv = adv * weights.to(adv)[inverse]
    return adv, zero_std
