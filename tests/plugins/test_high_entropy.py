"""High-entropy token training: the top-ρ selection, and the loss against an fp64 straight-line
reference (value and gradient) under both normalisers, KL on every token."""

import math
import zlib

import pytest
import torch

import vidrl
from vidrl import Session, ops


@pytest.fixture(scope="module")
def cls():
    return Session().load().registry("loss").get("high_entropy")


def _chosen(ent, mask, rho):
    """The ⌈ρ·N⌉ highest-entropy trained tokens, by sorting a Python list (no topk)."""
    cells = sorted(((float(ent[i, j]), i, j) for i in range(ent.shape[0]) for j in range(ent.shape[1])
                    if mask[i, j]), reverse=True)  # fmt: skip
    k = max(1, math.ceil(rho * len(cells) - 1e-9)) if cells else 0
    out = torch.zeros(ent.shape, dtype=torch.float64)
    for _, i, j in cells[:k]:
        out[i, j] = 1.0
    return out


@pytest.mark.parametrize(
    ("b", "t", "rho"), [(3, 5, 0.2), (4, 9, 0.5), (1, 1, 0.2), (6, 7, 1.0), (2, 11, 0.07)]
)
def test_top_fraction_keeps_the_highest_values_among_the_masked(b, t, rho):
    g = torch.Generator().manual_seed(b * 100 + t)
    values = torch.rand(b, t, generator=g)  # distinct: no ties
    mask = (torch.rand(b, t, generator=g) > 0.3).long()
    mask[0, 0] = 1
    got = ops.top_fraction(values, mask, rho)
    assert got.dtype == torch.bool and torch.equal(got.double(), _chosen(values, mask, rho))
    assert not ops.top_fraction(values, torch.zeros(b, t), rho).any()


def _inputs(lp, old, adv, mask, ref, ent, micro_batches=1):
    return vidrl.LossInputs(lp, adv, mask, torch.zeros(lp.shape[0], dtype=torch.long), float(mask.sum()) + 3,
                            float(lp.shape[0]), old, ref, micro_batches, ent)  # fmt: skip


@pytest.mark.parametrize("aggregation", ["token_mean", "micro_token_mean"])
@pytest.mark.parametrize("rho", [0.2, 0.6])
def test_loss_and_gradient_match_the_fp64_reference(cls, aggregation, rho):
    """Policy term on the chosen tokens only; normaliser: every trained token of the step
    (``token_mean``, TRL) or the tokens kept in the micro-batch (``micro_token_mean``, the
    released code); the KL term (β > 0) over every trained token."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{aggregation}{rho}".encode()))
    b, t = 5, 8
    lp = (torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
    old = lp.detach() + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    ref = lp.detach() + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) > 0.25).double()
    ent = torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    x = _inputs(lp, old, adv, mask, ref, ent, micro_batches=2)
    out = cls(cls.Config(beta=0.04, eps_high=0.28, rho=rho, aggregation=aggregation))(x)
    (grad,) = torch.autograd.grad(out.loss, lp)

    y = lp.detach().clone().requires_grad_(True)
    ratio = (y - old).exp()
    surr = torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.28) * adv[:, None])
    kept = _chosen(ent, mask, rho)
    d = ref - y
    kl = (d.exp() - d - 1) * mask
    if aggregation == "token_mean":
        ref_loss = (-(surr * kept).sum() + 0.04 * kl.sum()) / x.step_tokens
    else:
        ref_loss = (-(surr * kept).sum() / kept.sum() + 0.04 * kl.sum() / mask.sum()) / 2
    (ref_grad,) = torch.autograd.grad(ref_loss, y)
    torch.testing.assert_close(out.loss, ref_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert out.metrics["entropy/kept_frac"] == pytest.approx(float(kept.sum() / mask.sum()))
    assert out.metrics["entropy/kept_mean"] > float((ent * mask).sum() / mask.sum())


def test_rho_one_is_ppo_clip(cls):
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    x = _inputs(lp, lp.detach() * 0.9, torch.randn(3, generator=g, dtype=torch.float64), torch.ones(3, 4),
                lp.detach() * 1.1, torch.rand(3, 4, generator=g, dtype=torch.float64))  # fmt: skip
    ppo = Session().load().registry("loss").get("ppo_clip")
    same = ppo(ppo.Config(beta=0.1))(x).loss
    assert cls(cls.Config(beta=0.1, rho=1.0))(x).loss.item() == pytest.approx(same.item(), rel=1e-14)


def test_needs_entropy_and_checks_rho(cls):
    assert vidrl.Need.ENTROPY in cls(cls.Config()).needs()
    assert vidrl.Need.REFERENCE_MODEL in cls(cls.Config(beta=0.1)).needs()
    with pytest.raises(ValueError, match=r"rho must be in \(0, 1\]"):
        cls.Config(rho=0.0)
