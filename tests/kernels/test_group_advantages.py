"""group_advantages, reference and Triton, against the float64 loop reference."""

import zlib

import pytest
import references
import torch

from vidrl import ops
from vidrl.ops import advantages as ref_impl

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _triton():
    from vidrl.kernels import advantages

    return advantages.group_advantages


IMPLS = {"reference": lambda: ref_impl.group_advantages, "triton": _triton}


def _rewards(n, seed, binary=False):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(n, generator=g) * 2
    return (r > 0).float() if binary else r


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ops.MODES)
@pytest.mark.parametrize("std", ["unbiased", "biased"])
@pytest.mark.parametrize("singleton", ["zero", "raw"])
def test_ragged_groups_match_float64(impl, mode, std, singleton):
    seed = zlib.crc32(f"{impl}{mode}{std}{singleton}".encode())
    g = torch.Generator().manual_seed(seed)
    for trial in range(3):
        n = int(torch.randint(1, 60, (1,), generator=g))
        ids = torch.randint(-3, 9, (n,), generator=g)
        rewards = _rewards(n, seed + trial, binary=trial == 1)
        if trial == 2:  # unscored samples (NaN), whole groups of them included
            rewards = rewards.masked_fill((torch.rand(n, generator=g) < 0.3) | (ids == 2), float("nan"))
        adv, zero = IMPLS[impl]()(
            rewards.to(DEVICE), ids.to(DEVICE), mode=mode, std=std, eps=1e-4, singleton=singleton
        )
        ref, ref_zero = references.group_advantages(rewards, ids, mode, std, 1e-4, singleton)
        torch.testing.assert_close(adv.double().cpu(), ref, rtol=1e-5, atol=1e-5)
        assert zero.cpu().tolist() == ref_zero.tolist()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("b", "group"), [(1, 1), (8, 8), (63, 7), (512, 16), (24, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fixed_groups_with_weights(impl, b, group, dtype):
    rewards = _rewards(b, b * 100 + group).to(dtype)
    rewards[:group] = 0.25  # the first group is all equal
    w = torch.rand(b // group, generator=torch.Generator().manual_seed(b))
    adv, zero = IMPLS[impl]()(rewards.to(DEVICE), group_size=group, weights=w.to(DEVICE))
    ids = torch.arange(b) // group
    ref, ref_zero = references.group_advantages(rewards.float(), ids, "mean_std", "unbiased", 1e-6, "zero")
    torch.testing.assert_close(adv.double().cpu(), ref * w.double()[ids], rtol=1e-5, atol=1e-5)
    assert adv.dtype == torch.float32 and zero.cpu().tolist() == ref_zero.tolist()
    assert torch.equal(adv[:group].cpu(), torch.zeros(group))


def test_triton_writes_every_element_and_flag():
    """Outputs start as NaN/True garbage by poisoning torch.empty: every one must be written."""
    fn = _triton()
    rewards = _rewards(45, 5)
    ids = torch.arange(45) % 6
    real_empty = torch.empty

    def poisoned(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        return out.fill_(True) if out.dtype == torch.bool else out.fill_(float("nan"))

    torch.empty = poisoned
    try:
        adv, zero = fn(rewards.to(DEVICE), ids.to(DEVICE))
    finally:
        torch.empty = real_empty
    assert torch.isfinite(adv).all() and not zero.any()


def test_token_broadcast_through_ops():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
    adv, _ = ops.group_advantages(rewards, group_size=2, mask=mask, mode="mean")
    assert adv.tolist() == [[0.5, 0.5, 0.0], [-0.5, 0.0, 0.0], [-0.5, -0.5, -0.5], [0.0, 0.0, 0.0]]


def test_triton_refuses_float64():
    with pytest.raises(ValueError, match="dtype torch.float64 is not supported.*VIDRL_KERNELS=off"):
        _triton()(torch.zeros(4, dtype=torch.float64, device=DEVICE), group_size=2)


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_rewards(impl):
    adv, zero = IMPLS[impl]()(torch.zeros(0, device=DEVICE), torch.zeros(0, dtype=torch.long, device=DEVICE))
    assert adv.shape == (0,) and zero.shape == (0,)
