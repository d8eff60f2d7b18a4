"""Primitives with one contract each: a pure-torch reference here, and accelerated kernels that
plugins register under the same name (``register_kernels``). Each call dispatches on the input's
device (see ``vidrl.ops.dispatch``); callers never know which implementation ran."""

from __future__ import annotations

import torch

from vidrl.ops import advantages as _adv
from vidrl.ops import dispatch
from vidrl.ops import logprobs as _lp
from vidrl.ops.advantages import (
    MODES,
    check_advantage_args,
    check_group_size,
    check_weights,
    group_index,
    group_stats,
)
from vidrl.ops.dispatch import PRIMITIVES
from vidrl.ops.logprobs import check_linear_args, check_logprob_args
from vidrl.ops.losses import AGGREGATIONS, KL_ESTIMATORS, aggregate, kl_penalty, masked_mean, top_fraction


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, **kwargs):
    """logits [N, V], targets [N] → logprobs [N] (and entropy [N]); see ``logprobs.token_logprobs``."""
    kernel = dispatch.lookup("token_logprobs", logits.device)
    impl = kernel if kernel is not None else _lp.token_logprobs
    return impl(logits, targets, temperature, **kwargs)


def linear_token_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, **kwargs
):
    """hidden [N, H], weight [V, H], targets [N] → logprobs [N] (and entropy [N]), never [N, V];
    see ``logprobs.linear_token_logprobs``."""
    kernel = dispatch.lookup("linear_token_logprobs", hidden.device)
    impl = kernel if kernel is not None else _lp.linear_token_logprobs
    return impl(hidden, weight, targets, temperature, **kwargs)


def group_advantages(rewards: torch.Tensor, group_ids=None, group_size=None, **kwargs):
    """rewards [B] → (advantages [B], zero_std [num_groups]); see ``advantages.group_advantages``.

    ``mask=`` [B, T] broadcasts the advantages to tokens: [B, T], 0 where the mask is 0."""
    mask = kwargs.pop("mask", None)
    kernel = dispatch.lookup("group_advantages", rewards.device)
    impl = kernel if kernel is not None else _adv.group_advantages
    adv, zero_std = impl(rewards, group_ids, group_size, **kwargs)
    if mask is not None:  # broadcast to tokens: [B] → [B, T], zero where the mask is 0
        if mask.dim() != 2 or mask.shape[0] != adv.shape[0]:
            raise ValueError(f"mask must be [{adv.shape[0]}, T], got {list(mask.shape)}")
        adv = adv[:, None] * mask.to(adv.dtype)
    return adv, zero_std


__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "MODES",
    "PRIMITIVES",
    "aggregate",
    "check_advantage_args",
    "check_group_size",
    "check_weights",
    "check_linear_args",
    "check_logprob_args",
    "dispatch",
    "group_advantages",
    "group_index",
    "group_stats",
    "kl_penalty",
    "masked_mean",
    "top_fraction",
    "linear_token_logprobs",
    "token_logprobs",
]
