"""linear_token_logprobs, reference and Triton, against float64 on the full product."""

import pytest
import references
import torch
from tolerances import assert_close_norm, forward_tol

from vidrl.ops import logprobs as ref_impl

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _triton():
    from vidrl.kernels import linear_logprobs

    return linear_logprobs.linear_token_logprobs


IMPLS = {"reference": lambda: ref_impl.linear_token_logprobs, "triton": _triton}
#: gradient ‖error‖/‖grad‖: the logit gradient is rounded to the input dtype before two matmuls
GRAD_REL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}


def _inputs(n, h, v, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    weight = (torch.randn(v, h, generator=g, dtype=torch.float64) / h**0.5).to(dtype).to(DEVICE)
    targets = torch.randint(0, v, (n,), generator=g)
    targets[::5] = -100
    return hidden, weight, targets.to(DEVICE)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n", "h", "v", "chunk"), [(1, 8, 33, None), (37, 16, 300, 8), (20, 24, 129, 7)])
def test_forward_and_gradients_match_float64(impl, dtype, n, h, v, chunk):
    hidden, weight, targets = _inputs(n, h, v, dtype, seed=n * 31 + v)
    hx = hidden.clone().requires_grad_(True)
    wx = weight.clone().requires_grad_(True)
    lp, ent = IMPLS[impl]()(hx, wx, targets, 0.8, return_entropy=True, chunk_size=chunk)
    # forward: float64 maths on the logits the implementation itself saw (rounded to the input dtype)
    logits = (hidden @ weight.T).double()
    rlp, rent = references.token_logprobs(logits, targets, 0.8)
    scale = float(logits.abs().max()) / 0.8
    torch.testing.assert_close(lp.double(), rlp, **forward_tol(dtype, scale))
    torch.testing.assert_close(ent.double(), rent, **forward_tol(dtype, scale))
    # gradients: against float64 autograd through the full product
    hr = hidden.double().requires_grad_(True)
    wr = weight.double().requires_grad_(True)
    flp, fent = references.token_logprobs(hr @ wr.T, targets, 0.8)
    g = torch.Generator().manual_seed(3)
    a, b = (torch.randn(n, generator=g, dtype=torch.float64).to(DEVICE) for _ in range(2))
    gh, gw = torch.autograd.grad((lp * a.float()).sum() + (ent * b.float()).sum(), (hx, wx))
    rh, rw = torch.autograd.grad((flp * a).sum() + (fent * b).sum(), (hr, wr))
    assert gh.dtype == dtype and gw.dtype == dtype
    assert_close_norm(gh, rh, GRAD_REL[dtype])
    assert_close_norm(gw, rw, GRAD_REL[dtype])


def test_reference_float64_is_exact():
    hidden, weight, targets = _inputs(11, 6, 50, torch.float64, seed=9)
    hx, wx = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    lp = ref_impl.linear_token_logprobs(hx, wx, targets, chunk_size=4)
    rlp, _ = references.token_logprobs(hx @ wx.T, targets)
    torch.testing.assert_close(lp, rlp, rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(lp.sum(), (hx, wx))
    gb = torch.autograd.grad(rlp.sum(), (hx, wx))
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_chunking_does_not_change_the_result(impl):
    hidden, weight, targets = _inputs(13, 8, 40, torch.float32, seed=11)
    one = IMPLS[impl]()(hidden, weight, targets, chunk_size=13)
    many = IMPLS[impl]()(hidden, weight, targets, chunk_size=3)
    torch.testing.assert_close(one, many, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((4, 8), (10, 7)), r"need hidden \[N, H\] and weight \[V, H\], got \[4, 8\] and \[10, 7\]"),
        (((4, 8), (10, 8), 0), "chunk_size must be a positive int, got 0"),
    ],
)
def test_bad_arguments(impl, shapes, match):
    h = torch.zeros(*shapes[0], device=DEVICE)
    w = torch.zeros(*shapes[1], device=DEVICE)
    chunk = shapes[2] if len(shapes) > 2 else None
    with pytest.raises(ValueError, match=match):
        IMPLS[impl]()(h, w, torch.zeros(4, dtype=torch.long, device=DEVICE), chunk_size=chunk)


def test_mixed_dtypes_are_refused():
    with pytest.raises(ValueError, match="must share dtype and device"):
        ref_impl.linear_token_logprobs(
            torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.float64), torch.zeros(2).long()
        )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("frozen", ["weight", "hidden"])
def test_a_frozen_input_gets_no_gradient_and_the_other_the_same(impl, frozen):
    """A frozen LM head (LoRA) costs no [V, H] gradient buffer; the hidden gradient is unchanged."""
    hidden, weight, targets = _inputs(13, 16, 70, torch.float32, seed=5)
    both = [t.clone().requires_grad_(True) for t in (hidden, weight)]
    IMPLS[impl]()(*both, targets, chunk_size=4).sum().backward()
    one = [
        hidden.clone().requires_grad_(frozen != "hidden"),
        weight.clone().requires_grad_(frozen != "weight"),
    ]
    IMPLS[impl]()(*one, targets, chunk_size=4).sum().backward()
    for full, part in zip(both, one, strict=True):
        if part.requires_grad:
            torch.testing.assert_close(part.grad, full.grad, rtol=0, atol=0)
        else:
            assert part.grad is None
