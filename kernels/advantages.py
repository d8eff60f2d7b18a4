"""Triton group advantages: one launch, one program per group, every mode of the reference.

Fixed-size groups index the rewards directly; ragged group ids are first sorted into CSR form
(order, offsets) by torch. Statistics are float32 from upcast loads over the scored (non-NaN)
rewards; all-equal groups (max == min) get exactly 0 and their flag, unscored rewards 0; no
libdevice (sqrt_rn/div_rn are core Triton), no autotune.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vidrl import ops

SUPPORTED = (torch.float16, torch.bfloat16, torch.float32)
MODE_IDS = {mode: i for i, mode in enumerate(ops.MODES)}  # mean_std 0, mean 1, leave_one_out 2
MAX_BLOCK = 2**16


@triton.jit
def _group_kernel(
    r_ptr, order_ptr, offsets_ptr, w_ptr, adv_ptr, zero_ptr, group_size, eps,
    MODE: tl.constexpr, UNBIASED: tl.constexpr, RAW_SINGLETON: tl.constexpr, HAS_W: tl.constexpr,
    FIXED: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    g = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    if FIXED:
        count = group_size
        in_group = lanes < count
        idx = g * group_size + lanes
    else:
        start = tl.load(offsets_ptr + g)
        count = (tl.load(offsets_ptr + g + 1) - start).to(tl.int32)
        in_group = lanes < count
        idx = tl.load(order_ptr + start + lanes, mask=in_group, other=0)
    loaded = tl.load(r_ptr + idx, mask=in_group, other=0.0).to(tl.float32)
    scored = in_group & (loaded == loaded)  # NaN: an unscored sample, in no statistic
    r = tl.where(scored, loaded, 0.0)
    k = tl.sum(scored.to(tl.float32), axis=0)
    mean = tl.div_rn(tl.sum(r, axis=0), tl.maximum(k, 1.0))
    dev = tl.where(scored, r - mean, 0.0)
    ssq = tl.sum(dev * dev, axis=0)
    dof = k - 1.0 if UNBIASED else k
    sigma = tl.sqrt_rn(tl.where(dof > 0.0, tl.div_rn(ssq, tl.maximum(dof, 1.0)), 0.0))
    r_max = tl.max(tl.where(scored, r, float("-inf")), axis=0)
    r_min = tl.min(tl.where(scored, r, float("inf")), axis=0)
    zero = (r_max == r_min) | (k == 0.0)
    if MODE == 0:
        adv = tl.div_rn(dev, sigma + eps + tl.zeros_like(dev))
    elif MODE == 1:
        adv = dev
    else:
        adv = tl.div_rn(dev * k, tl.maximum(k - 1.0, 1.0) + tl.zeros_like(dev))
    adv = tl.where(zero, 0.0, adv)
    if RAW_SINGLETON:
        raw = tl.div_rn(r, 1.0 + eps + tl.zeros_like(r)) if MODE == 0 else r
        adv = tl.where(k == 1.0, raw, adv)
    adv = tl.where(scored, adv, 0.0)
    if HAS_W:
        adv = adv * tl.load(w_ptr + g).to(tl.float32)
    tl.store(adv_ptr + idx, adv, mask=in_group)
    tl.store(zero_ptr + g, zero)


def _csr(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(order [B], offsets [num_groups + 1], num_groups, largest group) for ragged ids."""
    inverse, num_groups = ops.group_index(rewards.numel(), group_ids)
    counts = torch.bincount(inverse, minlength=num_groups)
    order = torch.argsort(inverse, stable=True)
    offsets = torch.zeros(num_groups + 1, dtype=torch.int64, device=rewards.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return order, offsets, num_groups, int(counts.max()) if num_groups else 1


def group_advantages(
    rewards,
    group_ids=None,
    group_size=None,
    *,
    mode="mean_std",
    std="unbiased",
    eps=1e-6,
    singleton="zero",
    weights=None,
):
    """Same contract as ``vidrl.ops.group_advantages``; float16/bfloat16/float32 rewards."""
    ops.check_advantage_args(rewards, mode, std, eps, singleton)
    if rewards.dtype not in SUPPORTED:
        raise ValueError(
            f"triton group_advantages: dtype {rewards.dtype} is not supported (valid: {SUPPORTED}); "
            "set VIDRL_KERNELS=off to use the float64-capable reference"
        )
    if (group_ids is None) == (group_size is None):
        raise ValueError("give exactly one of group_ids and group_size")
    rewards = rewards.contiguous()
    b = rewards.numel()
    if group_size is not None:
        ops.check_group_size(b, group_size)
        order = offsets = rewards  # unused by the FIXED variant
        num_groups, largest = b // group_size, group_size
    else:
        order, offsets, num_groups, largest = _csr(rewards, group_ids.to(rewards.device))
    block = triton.next_power_of_2(largest)
    if block > MAX_BLOCK:
        raise ValueError(
            f"a group of {largest} rollouts exceeds the kernel's {MAX_BLOCK}; set VIDRL_KERNELS=off"
        )
    if weights is not None:
        ops.check_weights(weights, num_groups)
    adv = torch.empty(b, dtype=torch.float32, device=rewards.device)
    zero = torch.empty(num_groups, dtype=torch.bool, device=rewards.device)
    if num_groups:
        _group_kernel[(num_groups,)](
            rewards, order, offsets, rewards if weights is None else weights.contiguous(), adv, zero,
            group_size or 0, float(eps), MODE=MODE_IDS[mode], UNBIASED=std == "unbiased",
            RAW_SINGLETON=singleton == "raw", HAS_W=weights is not None, FIXED=group_size is not None,
            BLOCK=block,
        )  # fmt: skip
    return adv, zero
