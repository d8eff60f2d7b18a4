"""The engine's checks of what components return, so that a plugin's mistake surfaces as an error
naming the component, its plugin and the contract, not as a torch error deep inside the engine (or,
worse, inside another component). Cheap: shapes, types, ranges, and one finiteness reduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vidrl.errors import ComponentError
from vidrl.plugin.components import Component, label
from vidrl.types import Advantages, Augmented, LossInputs, LossOutput


def _fail(component: Component, what: str) -> ComponentError:
    return ComponentError(f"{label(component)} {what}")


def _shape(t: torch.Tensor) -> str:
    return f"[{', '.join(map(str, t.shape))}]"


def check_advantages(estimator: Component, out: Any, b: int, t: int, num_groups: int) -> Advantages:
    """An estimator's output for B = ``b`` roll-outs of ``num_groups`` groups, T = ``t`` tokens."""
    if not isinstance(out, Advantages):
        raise _fail(
            estimator, f"returned {type(out).__name__}; an advantage estimator returns vidrl.Advantages"
        )
    adv = out.advantages
    if not torch.is_tensor(adv) or adv.shape not in (torch.Size([b]), torch.Size([b, t])):
        got = _shape(adv) if torch.is_tensor(adv) else type(adv).__name__
        raise _fail(estimator, f"returned advantages of shape {got}; expected [{b}] or [{b}, {t}]")
    if not torch.isfinite(adv).all():
        raise _fail(
            estimator,
            f"returned non-finite advantages ({int((~torch.isfinite(adv)).sum())} of them); a NaN "
            "reward marks an unscored sample, which an estimator leaves out (vidrl.ops.group_advantages)",
        )
    for name in ("zero_std", "group_weights"):
        value = getattr(out, name)
        if not torch.is_tensor(value) or value.shape != torch.Size([num_groups]):
            got = _shape(value) if torch.is_tensor(value) else type(value).__name__
            raise _fail(estimator, f"returned {name} of shape {got}; expected [{num_groups}] (one per group)")
    return out


def check_pairing(estimator: Component, loss: Component, adv: Advantages) -> None:
    """A per-token advantage [B, T] reaches only a loss that takes one."""
    if adv.advantages.dim() == 2 and not getattr(loss, "token_advantages", True):
        raise ComponentError(
            f"{label(estimator)} returned per-token advantages [B, T], but {label(loss)} takes one "
            "advantage per roll-out [B]: pair it with a sequence-level estimator"
        )


def call_loss(loss: Component, inputs: LossInputs) -> LossOutput:
    """``loss(inputs)``, checked; a TypeError while an undeclared input is None says why it is None
    (a loss written when every loss got old log-probs, before ``Need`` was consulted)."""
    try:
        out = loss(inputs)
    except TypeError as e:
        missing = [n for n in ("old_logprobs", "ref_logprobs") if getattr(inputs, n) is None]
        if not missing:
            raise
        raise ComponentError(
            f"{label(loss)} raised TypeError: {e}; note that {' and '.join(missing)} are None: a loss "
            "gets them only when it declares Need.OLD_LOGPROBS / Need.REFERENCE_MODEL"
        ) from e
    return check_loss_output(loss, out)


def check_loss_output(loss: Component, out: Any) -> LossOutput:
    """A policy loss's output for one micro-batch."""
    if not isinstance(out, LossOutput):
        raise _fail(
            loss, f"returned {type(out).__name__}; a policy loss returns vidrl.LossOutput(loss, metrics)"
        )
    if not torch.is_tensor(out.loss) or out.loss.dim() != 0:
        got = _shape(out.loss) if torch.is_tensor(out.loss) else type(out.loss).__name__
        raise _fail(loss, f"returned a loss of shape {got}; expected a scalar tensor")
    if not torch.isfinite(out.loss.detach()):
        raise _fail(loss, f"returned a non-finite loss ({float(out.loss.detach())})")
    if not out.loss.requires_grad:
        raise _fail(loss, "returned a loss with no gradient (is it computed from inputs.logprobs?)")
    bad = {k: v for k, v in out.metrics.items() if not isinstance(v, (int, float))}
    if bad:
        raise _fail(loss, f"returned metrics that are not floats: {bad}")
    return out


def check_augmented(augmenter: Component, out: Any, num_prompts: int) -> Mapping[int, Augmented]:
    """An augmenter's replacements of a batch of ``num_prompts`` prompts."""
    if not isinstance(out, Mapping):
        raise _fail(
            augmenter,
            f"returned {type(out).__name__}; an augmenter returns {{prompt index: vidrl.Augmented}}",
        )
    for p, value in out.items():
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < num_prompts:
            raise _fail(augmenter, f"replaced prompt {p!r}; valid indices are 0..{num_prompts - 1}")
        if not isinstance(value, Augmented):
            raise _fail(
                augmenter, f"returned {type(value).__name__} for prompt {p}; expected vidrl.Augmented"
            )
    return out
