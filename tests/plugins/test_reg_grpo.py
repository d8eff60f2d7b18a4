"""Reg-GRPO: value and gradient against an fp64 autograd reference written from the spec, the
π_θ = π_old case (finite, never NaN), micro-batch invariance, and the whole-groups requirement."""

import math

import pytest
import torch

import vidrl
from vidrl import LossInputs, Session


def _loss(**options):
    cls = Session().load().registry("loss").get("reg_grpo")
    return cls(cls.Config(**options))


def reference(lp, old, ref, adv, mask, ids, beta, eps):
    """The spec in float64 with plain loops: mean over sequences of (Â − (ρ − μ)/sqrt(var + eps))²
    + β · token-mean k3 KL."""
    rho = ((lp - old) * mask).sum(-1)
    pred = torch.empty_like(rho)
    for g in ids.unique():
        sel = ids == g
        r = rho[sel]
        pred[sel] = (r - r.mean()) / torch.sqrt(((r - r.mean()) ** 2).mean() + eps)
    sq = ((adv - pred) ** 2).mean()
    d = ref - lp
    kl = ((torch.exp(d) - d - 1) * mask).sum() / mask.sum()
    return sq + beta * kl


def _inputs(b=12, t=7, groups=3, seed=0, same_policy=False):
    g = torch.Generator().manual_seed(seed)
    lp = (-torch.rand(b, t, generator=g, dtype=torch.float64) * 3).requires_grad_()
    old = (
        lp.detach().clone()
        if same_policy
        else lp.detach() + 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)
    )
    ref = lp.detach() + 0.2 * torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).long()
    ids = torch.arange(groups).repeat_interleave(b // groups)
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    return lp, old, ref, adv, mask, ids


def _call(loss, lp, old, ref, adv, mask, ids, rows=slice(None)):
    inp = LossInputs(lp[rows], adv[rows], mask[rows], ids[rows], float(mask.sum()), float(mask.shape[0]),
                     old[rows], ref[rows])  # fmt: skip
    return loss(inp)


@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_value_and_gradient_match_the_fp64_reference(beta):
    lp, old, ref, adv, mask, ids = _inputs()
    out = _call(_loss(beta=beta, eps=1e-6), lp, old, ref, adv, mask, ids)
    (got,) = torch.autograd.grad(out.loss, lp)
    lp2 = lp.detach().clone().requires_grad_()
    expected_loss = reference(lp2, old, ref, adv, mask.double(), ids, beta, 1e-6)
    (expected,) = torch.autograd.grad(expected_loss, lp2)
    torch.testing.assert_close(out.loss, expected_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert got[mask == 0].eq(0).all()


def test_the_policy_equal_to_the_rollout_policy_is_finite():
    lp, old, ref, adv, mask, ids = _inputs(same_policy=True)
    out = _call(_loss(beta=0.0, eps=1e-6), lp, old, ref, adv, mask, ids)
    (grad,) = torch.autograd.grad(out.loss, lp)
    assert math.isfinite(out.loss.item()) and torch.isfinite(grad).all()
    assert out.loss.item() == pytest.approx(float((adv**2).mean()))  # every prediction is 0
    assert out.metrics["reg/rho_std"] == 0.0
    # at ρ = 0: ∂pred_j/∂ρ_i = (δ_ij − 1/G) / sqrt(eps), so ∂L/∂ρ_i = −2 (Â_i − mean_g Â) / (B sqrt(eps)),
    # the same on every unmasked token of sequence i
    centred = adv - adv.view(3, 4).mean(1).repeat_interleave(4)
    expected = -2 * centred / (len(adv) * math.sqrt(1e-6))
    torch.testing.assert_close(grad, expected[:, None] * mask, rtol=1e-6, atol=1e-9)


def test_all_equal_rewards_give_zero_targets_and_no_nan():
    lp, old, ref, _, mask, ids = _inputs(same_policy=True)
    out = _call(_loss(beta=0.0), lp, old, ref, torch.zeros(12, dtype=torch.float64), mask, ids)
    (grad,) = torch.autograd.grad(out.loss, lp)
    assert out.loss.item() == 0.0 and grad.eq(0).all()


def test_micro_batches_of_whole_groups_sum_to_the_whole_step():
    lp, old, ref, adv, mask, ids = _inputs()
    loss = _loss(beta=0.1)
    whole = _call(loss, lp, old, ref, adv, mask, ids).loss
    parts = sum(_call(loss, lp, old, ref, adv, mask, ids, slice(i, i + 4)).loss for i in range(0, 12, 4))
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)


def test_micro_batches_must_hold_whole_groups():
    session = Session().load()
    algo = vidrl.Algorithm(session.create("advantage", "grpo"), _loss(), [])
    with pytest.raises(ValueError, match=r"micro_batch_size \(6\) must be a multiple of group_size \(4\)"):
        vidrl.check_micro_batches(algo, vidrl.StepOptions(group_size=4, micro_batch_size=6))
    vidrl.check_micro_batches(algo, vidrl.StepOptions(group_size=4, micro_batch_size=8))


def test_bad_options():
    with pytest.raises(ValueError, match="eps > 0"):
        _loss(eps=0.0)
