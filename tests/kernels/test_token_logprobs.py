"""token_logprobs, reference and Triton, forward and gradients against a float64 reference.

Without a GPU the Triton kernels run under TRITON_INTERPRET=1 on small shapes (tests/conftest.py);
with one, the same tests run on CUDA, plus the full-size test marked ``gpu``.
"""

import pytest
import references
import torch
from tolerances import forward_tol, grad_tol

from vidrl.ops import logprobs as ref_impl

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [(1, 1), (1, 1000), (63, 1000), (5, 257), (4, 1521), (17, 16)]


def _triton():
    from vidrl.kernels import logprobs

    return logprobs


IMPLS = {"reference": lambda: ref_impl.token_logprobs, "triton": lambda: _triton().token_logprobs}


def _inputs(n, v, dtype, seed, scale=3.0, ignore_every=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, v, generator=g, dtype=torch.float64) * scale).to(dtype).to(DEVICE)
    targets = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        targets[::ignore_every] = -100
    return logits, targets.to(DEVICE)


def _check(impl, logits, targets, temperature, scale, with_grads=True):
    fn = IMPLS[impl]()
    x = logits.clone().requires_grad_(True)
    lp, ent = fn(x, targets, temperature, return_entropy=True)
    xr = logits.detach().double().clone().requires_grad_(True)
    rlp, rent = references.token_logprobs(xr, targets, temperature)
    tol = forward_tol(logits.dtype, scale / temperature)
    torch.testing.assert_close(lp.double(), rlp, **tol)
    torch.testing.assert_close(ent.double(), rent, **tol)
    if with_grads:
        g = torch.Generator().manual_seed(7)
        w_lp = torch.randn(lp.shape, generator=g, dtype=torch.float64).to(DEVICE)
        w_ent = torch.randn(lp.shape, generator=g, dtype=torch.float64).to(DEVICE)
        (gx,) = torch.autograd.grad((lp * w_lp.to(lp.dtype)).sum() + (ent * w_ent.to(ent.dtype)).sum(), x)
        (gr,) = torch.autograd.grad((rlp * w_lp).sum() + (rent * w_ent).sum(), xr)
        assert gx.dtype == logits.dtype
        torch.testing.assert_close(gx.double(), gr, **grad_tol(logits.dtype, scale / temperature))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("n", "v"), SHAPES)
def test_forward_and_gradients_match_float64(impl, dtype, n, v):
    logits, targets = _inputs(n, v, dtype, seed=n * 7919 + v, ignore_every=3 if n > 2 else 0)
    _check(impl, logits, targets, temperature=0.7 if v % 2 else 1.0, scale=3.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_float64_reference_is_exact(impl):
    if impl == "triton":
        logits, targets = _inputs(3, 50, torch.float64, seed=1)
        with pytest.raises(ValueError, match="dtype torch.float64 is not supported.*VIDRL_KERNELS=off"):
            IMPLS[impl]()(logits, targets)
        return
    logits, targets = _inputs(9, 333, torch.float64, seed=2, ignore_every=4)
    _check(impl, logits, targets, temperature=1.3, scale=3.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_extreme_and_peaked_logits(impl):
    logits, targets = _inputs(6, 300, torch.float32, seed=3)
    logits[0, :] = 0.0
    logits[0, 5] = 1e4  # peaked: one token takes all the mass
    targets[0] = 5
    logits[1, ::2] = -1e4
    logits[1, 1::2] = 1e4
    logits[2, :] = float("-inf")  # all but two tokens impossible
    logits[2, 10], logits[2, 11] = 1.0, 2.0
    targets[2] = 11
    logits[3, 200:] = float("-inf")  # an impossible tail, last block included
    targets[3] = 5
    _check(impl, logits, targets, temperature=1.0, scale=1e4)


@pytest.mark.parametrize("impl", IMPLS)
def test_impossible_target_gives_minus_inf(impl):
    logits, targets = _inputs(2, 40, torch.float32, seed=4)
    logits[1, 3] = float("-inf")
    targets[1] = 3
    lp = IMPLS[impl]()(logits, targets)
    assert lp[1] == float("-inf") and torch.isfinite(lp[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_inplace_backward_matches_and_reuses_storage(impl):
    logits, targets = _inputs(7, 130, torch.bfloat16, seed=5, ignore_every=2)
    fn = IMPLS[impl]()
    a = logits.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(fn(a, targets, 0.9).sum(), a)
    b = logits.clone()
    leaf = b.requires_grad_(True)
    (gb,) = torch.autograd.grad(fn(leaf * 1, targets, 0.9, inplace_backward=True).sum(), leaf)
    torch.testing.assert_close(gb, ga, rtol=0, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_non_contiguous_rows(impl):
    big, targets = _inputs(5, 300, torch.float32, seed=6)
    logits = big[:, :257]  # row stride 300, V = 257
    _check(impl, logits, targets, temperature=1.0, scale=3.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batch(impl):
    lp = IMPLS[impl]()(torch.zeros(0, 11, device=DEVICE), torch.zeros(0, dtype=torch.long, device=DEVICE))
    assert lp.shape == (0,)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"targets": torch.tensor([0, 11])}, r"targets\[1\] = 11 is outside \[0, 11\)"),
        ({"targets": torch.tensor([0])}, r"targets must have shape \[2\], got \[1\]"),
        ({"targets": torch.tensor([0.0, 1.0])}, "targets must be int32 or int64"),
        ({"temperature": 0.0}, "temperature must be a number > 0, got 0.0"),
    ],
)
def test_bad_arguments(impl, kwargs, match):
    args = {"targets": torch.tensor([0, 1]), "temperature": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        IMPLS[impl]()(torch.zeros(2, 11, device=DEVICE), args["targets"].to(DEVICE), args["temperature"])


def test_triton_writes_every_output_element():
    """Buffers poisoned with NaN before the launch: an element the kernel skips stays NaN."""
    k = _triton()
    logits, targets = _inputs(9, 515, torch.bfloat16, seed=8, ignore_every=4)
    n = logits.shape[0]
    lp, lse, ent = (torch.full((n,), float("nan"), device=DEVICE) for _ in range(3))
    k.launch_forward(logits, targets, lp, lse, ent, 1.0, -100)
    assert torch.isfinite(lp).all() and torch.isfinite(lse).all() and torch.isfinite(ent).all()
    grad = torch.full_like(logits, float("nan"))
    g = torch.ones(n, device=DEVICE)
    k.launch_backward(logits, grad, targets, lse, ent, g, g, 1.0, -100)
    assert torch.isfinite(grad).all()
    assert (grad[::4] == 0).all()  # ignored rows: exactly zero gradient


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the full-size shape (N·V > 2³¹)")
def test_full_size_int64_offsets():
    n, v = 16384, 152064  # N·V = 2.49e9 > 2³¹: row offsets must be int64
    logits = torch.randn(n, v, device="cuda", dtype=torch.bfloat16)
    targets = torch.randint(0, v, (n,), device="cuda")
    lp = _triton().token_logprobs(logits, targets)
    rows = torch.tensor([0, 1, n // 2, n - 2, n - 1], device="cuda")
    expected = torch.log_softmax(logits[rows].double(), -1).gather(1, targets[rows, None]).squeeze(1)
    torch.testing.assert_close(lp[rows].double(), expected, **forward_tol(torch.bfloat16, 6.0))
