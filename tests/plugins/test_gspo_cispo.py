"""GSPO (and GSPO-token) and CISPO: value and gradient against float64 references written from the
papers' formulas with plain loops, odd shapes and padded rows; GSPO-token equals GSPO with sequence
advantages; micro-batches of a step sum to the whole step."""

import math

import pytest
import torch

from vidrl import LossInputs, Session


def _loss(name, **options):
    cls = Session().load().registry("loss").get(name)
    return cls(cls.Config(**options))


def _inputs(b=7, t=5, seed=0, token_adv=False):
    g = torch.Generator().manual_seed(seed)
    lp = (-torch.rand(b, t, generator=g, dtype=torch.float64) * 3).requires_grad_()
    old = lp.detach() + 0.2 * torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[-1] = 0  # a row with no trained token
    mask = (torch.arange(t)[None] < lengths[:, None]).double()
    adv = torch.randn((b, t) if token_adv else (b,), generator=g, dtype=torch.float64)
    ids = torch.arange(b) // 3
    return LossInputs(lp, adv, mask, ids, float(mask.sum()), float(b), old_logprobs=old)


def gspo_reference(x, lo, hi):
    """(1/B) Σ_i −min(s_i Â_i, clip(s_i, 1 − lo, 1 + hi) Â_i), s_i = exp(mean_t log r_{i,t})."""
    total = 0.0
    for i in range(x.logprobs.shape[0]):
        n = int(x.mask[i].sum())
        if n == 0:
            continue
        s = torch.exp(sum(x.logprobs[i, t] - x.old_logprobs[i, t] for t in range(n)) / n)
        a = x.advantages[i]
        total = total - torch.minimum(s * a, s.clamp(1 - lo, 1 + hi) * a)
    return total / x.step_sequences


def gspo_token_reference(x, lo, hi):
    """(1/B) Σ_i (1/|o_i|) Σ_t −min(s_it Â_it, clip(s_it) Â_it), s_it = sg[s_i] π_θ / sg[π_θ]."""
    total = 0.0
    for i in range(x.logprobs.shape[0]):
        n = int(x.mask[i].sum())
        if n == 0:
            continue
        s = torch.exp(sum(x.logprobs[i, t] - x.old_logprobs[i, t] for t in range(n)) / n).detach()
        row = 0.0
        for t in range(n):
            st = s * torch.exp(x.logprobs[i, t] - x.logprobs[i, t].detach())
            a = x.advantages[i, t] if x.advantages.dim() == 2 else x.advantages[i]
            row = row - torch.minimum(st * a, st.clamp(1 - lo, 1 + hi) * a)
        total = total + row / n
    return total / x.step_sequences


def cispo_reference(x, lo, hi):
    """−(1/Σ|o_i|) Σ_i Σ_t sg(clip(r_it, lo, hi)) Â_i log π_θ(o_it)."""
    total = 0.0
    for i in range(x.logprobs.shape[0]):
        for t in range(int(x.mask[i].sum())):
            r = torch.exp(x.logprobs[i, t] - x.old_logprobs[i, t]).detach()
            a = x.advantages[i, t] if x.advantages.dim() == 2 else x.advantages[i]
            total = total - r.clamp(lo, hi) * a * x.logprobs[i, t]
    return total / x.step_tokens


def _check(loss, reference, x):
    out = loss(x).loss
    (grad,) = torch.autograd.grad(out, x.logprobs)
    ref = reference(x)
    (ref_grad,) = torch.autograd.grad(ref, x.logprobs)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert grad.abs().sum() > 0 and (grad[x.mask == 0] == 0).all()


@pytest.mark.parametrize(("eps", "seed"), [((3e-4, 4e-4), 0), ((0.2, 0.28), 1), ((0.05, 0.1), 2)])
def test_gspo_matches_the_reference(eps, seed):
    lo, hi = eps
    x = _inputs(seed=seed)
    _check(_loss("gspo", eps_low=lo, eps_high=hi), lambda x: gspo_reference(x, lo, hi), x)
    _check(
        _loss("gspo", eps_low=lo, eps_high=hi, variant="token"), lambda x: gspo_token_reference(x, lo, hi), x
    )


def test_gspo_token_with_sequence_advantages_equals_gspo():
    x = _inputs(seed=3)
    seq, tok = (
        _loss("gspo", eps_low=0.1, eps_high=0.1),
        _loss("gspo", eps_low=0.1, eps_high=0.1, variant="token"),
    )
    a, b = seq(x).loss, tok(x).loss
    ga, gb = torch.autograd.grad(a, x.logprobs)[0], torch.autograd.grad(b, x.logprobs)[0]
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


def test_gspo_token_takes_per_token_advantages_and_gspo_refuses_them():
    x = _inputs(seed=4, token_adv=True)
    _check(
        _loss("gspo", variant="token", eps_low=0.1, eps_high=0.2),
        lambda x: gspo_token_reference(x, 0.1, 0.2),
        x,
    )
    with pytest.raises(ValueError, match="variant: token"):
        _loss("gspo")(x)


@pytest.mark.parametrize(
    ("eps_low", "eps_high", "token_adv"), [(None, 0.28, False), (0.2, 0.2, True), (0.5, 5.0, False)]
)
def test_cispo_matches_the_reference(eps_low, eps_high, token_adv):
    x = _inputs(seed=5, token_adv=token_adv)
    lo = 0.0 if eps_low is None else 1 - eps_low
    _check(
        _loss("cispo", eps_low=eps_low, eps_high=eps_high), lambda x: cispo_reference(x, lo, 1 + eps_high), x
    )


def test_cispo_keeps_a_gradient_on_tokens_ppo_would_clip():
    """A token far past the clip range: PPO-clip's gradient there is 0, CISPO's is not."""
    x = _inputs(seed=6)
    old = x.logprobs.detach() - 2.0  # r = e² ≫ 1 + ε on every token
    x = LossInputs(x.logprobs, x.advantages.abs(), x.mask, x.group_ids, x.step_tokens, x.step_sequences, old)
    grad_cispo = torch.autograd.grad(_loss("cispo")(x).loss, x.logprobs)[0]
    grad_ppo = torch.autograd.grad(_loss("ppo_clip")(x).loss, x.logprobs)[0]
    trained = x.mask.bool()
    assert (grad_ppo[trained] == 0).all() and (grad_cispo[trained] != 0).all()


@pytest.mark.parametrize("name", ["gspo", "cispo"])
def test_micro_batches_sum_to_the_whole_step(name):
    x = _inputs(b=9, seed=7)
    loss = _loss(name)
    whole = loss(x).loss
    parts = 0.0
    for s in (slice(0, 4), slice(4, 9)):
        part = LossInputs(x.logprobs[s], x.advantages[s], x.mask[s], x.group_ids[s], x.step_tokens,
                          x.step_sequences, x.old_logprobs[s])  # fmt: skip
        parts = parts + loss(part).loss
    assert math.isclose(float(whole.detach()), float(parts.detach()), rel_tol=1e-12, abs_tol=1e-15)
