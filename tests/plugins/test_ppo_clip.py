"""PPO-clip with KL: hand values, clipping on both signs of the advantage, fp64 gradients."""

import zlib

import pytest
import torch

import vidrl
from vidrl import Session


@pytest.fixture(scope="module")
def cls():
    return Session().load().registry("loss").get("ppo_clip")


def _inputs(lp, old, adv, mask=None, ref=None):
    mask = torch.ones_like(lp) if mask is None else mask
    return vidrl.LossInputs(lp, adv, mask, torch.zeros(lp.shape[0], dtype=torch.long),
                            step_tokens=float(mask.sum()), step_sequences=float(lp.shape[0]),
                            old_logprobs=old, ref_logprobs=ref)  # fmt: skip


def test_hand_values_and_clipping_for_both_signs(cls):
    # ratios e^{0.5} ≈ 1.65 (above 1.2) and e^{-0.5} ≈ 0.61 (below 0.8)
    lp = torch.tensor([[0.5, -0.5], [0.5, -0.5]])
    old = torch.zeros(2, 2)
    adv = torch.tensor([1.0, -1.0])
    out = cls(cls.Config())(_inputs(lp, old, adv))
    r_hi, r_lo = torch.exp(torch.tensor(0.5)), torch.exp(torch.tensor(-0.5))
    # A > 0: min(r, clip r) → 1.2 for r_hi, r_lo for r_lo; A < 0: min(−r, −clip r) → −r_hi, −0.8
    expected = -(1.2 + r_lo - r_hi - 0.8) / 4
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.metrics["clip_frac"] == 0.5  # the clipped term is active for 2 of the 4 tokens


def test_asymmetric_clip(cls):
    lp = torch.tensor([[0.5]])
    out = cls(cls.Config(eps_high=0.28))(_inputs(lp, torch.zeros(1, 1), torch.tensor([1.0])))
    assert out.loss.item() == pytest.approx(-1.28)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "constant"])
@pytest.mark.parametrize("bias", [False, True])
def test_gradient_matches_fp64_reference(cls, estimator, aggregation, bias):
    """``bias``: TRL's ``use_bias_correction_kl``, the per-token KL times the unclipped ratio."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{estimator}{aggregation}".encode()))
    b, t = 5, 7
    lp = (torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
    old = lp.detach() + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    ref = lp.detach() + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) > 0.25).double()
    cfg = cls.Config(
        beta=0.04, kl_estimator=estimator, aggregation=aggregation, max_length=t, kl_bias_correction=bias
    )
    loss = cls(cfg)(_inputs(lp, old, adv, mask, ref)).loss
    (grad,) = torch.autograd.grad(loss, lp)

    # straight-line reference of the same objective
    x = lp.detach().clone().requires_grad_(True)
    ratio = (x - old).exp()
    surr = torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
    d = ref - x
    kl = {"k1": -d, "k2": d**2 / 2, "k3": d.exp() - d - 1}[estimator]
    tok = (-surr + 0.04 * kl * (ratio if bias else 1)) * mask
    ref_loss = {
        "token_mean": tok.sum() / mask.sum(),
        "sequence_mean": (tok.sum(1) / mask.sum(1).clamp(min=1)).mean(),
        "constant": tok.sum() / (t * b),
    }[aggregation]
    (ref_grad,) = torch.autograd.grad(ref_loss, x)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_bias_correction_keeps_the_on_policy_value_not_its_gradient(cls, estimator):
    g = torch.Generator().manual_seed(11)
    lp = (torch.randn(4, 6, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
    ref = lp.detach() + torch.randn(4, 6, generator=g, dtype=torch.float64) * 0.3
    on = _inputs(lp, lp.detach(), torch.randn(4, generator=g, dtype=torch.float64), None, ref)  # r = 1
    plain = cls(cls.Config(beta=0.1, kl_estimator=estimator))
    corrected = cls(cls.Config(beta=0.1, kl_estimator=estimator, kl_bias_correction=True))
    torch.testing.assert_close(corrected(on).loss, plain(on).loss, rtol=1e-12, atol=1e-12)
    g_plain = torch.autograd.grad(plain(on).loss, lp)[0]
    g_corr = torch.autograd.grad(corrected(on).loss, lp)[0]
    assert not torch.allclose(g_plain, g_corr)


def test_needs_follow_beta(cls):
    assert cls(cls.Config()).needs() == {vidrl.Need.OLD_LOGPROBS}
    assert vidrl.Need.REFERENCE_MODEL in cls(cls.Config(beta=0.01)).needs()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps_low": 1.0}, "need 0 <= eps_low < 1"),
        ({"beta": -0.1}, "beta >= 0"),
        ({"aggregation": "constant"}, "needs max_length > 0"),
        ({"delta": 1.1}, r"delta must be > 1 \+ eps_high"),
    ],  # fmt: skip
)
def test_bad_config(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls.Config(**kwargs)


def test_token_level_advantages_and_on_policy_gradient(cls):
    """On policy (π_θ = π_old) the gradient is −A·mask / tokens: the policy-gradient estimator."""
    lp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = cls(cls.Config())(_inputs(lp, torch.zeros(2, 3), adv, mask)).loss
    (grad,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(grad, -adv * mask / 5)
