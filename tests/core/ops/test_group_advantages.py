"""vidrl.ops.group_advantages against hand-computed values and an fp64 loop reference."""

import math
import zlib

import pytest
import torch
from references import group_advantages as reference

from vidrl import ops


def test_hand_computed_grpo_unbiased():
    # group 0: [1, 0, 1] mean 2/3, unbiased std sqrt(1/3); group 1: [1, 2, 2]
    adv, zero = ops.group_advantages(torch.tensor([1.0, 0, 1, 1, 2, 2]), group_size=3, eps=0.0)
    s = math.sqrt(1 / 3)
    expected = [(1 / 3) / s, (-2 / 3) / s, (1 / 3) / s, (-2 / 3) / s, (1 / 3) / s, (1 / 3) / s]
    torch.testing.assert_close(adv, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert zero.tolist() == [False, False]


def test_hand_computed_biased_mean_and_loo():
    r = torch.tensor([0.0, 1.0, 2.0, 5.0])  # one group, mean 2, biased var (4+1+0+9)/4 = 3.5
    adv, _ = ops.group_advantages(r, group_size=4, std="biased", eps=0.0)
    torch.testing.assert_close(adv, (r - 2) / math.sqrt(3.5))
    adv, _ = ops.group_advantages(r, group_size=4, mode="mean")
    assert adv.tolist() == [-2.0, -1.0, 0.0, 3.0]
    adv, _ = ops.group_advantages(r, group_size=4, mode="leave_one_out")
    # R_i - mean of the other three: 0 - 8/3, 1 - 7/3, 2 - 2, 5 - 1
    torch.testing.assert_close(adv, torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0]))


@pytest.mark.parametrize("mode", ops.advantages.MODES)
@pytest.mark.parametrize("std", ["unbiased", "biased"])
@pytest.mark.parametrize("singleton", ["zero", "raw"])
def test_against_fp64_reference_on_random_ragged_groups(mode, std, singleton):
    g = torch.Generator().manual_seed(zlib.crc32(f"{mode}-{std}-{singleton}".encode()))
    for trial in range(5):
        n = int(torch.randint(1, 70, (1,), generator=g))
        ids = torch.randint(-5, 12, (n,), generator=g)  # ragged, unsorted, negative ids, singletons
        rewards = torch.randn(n, generator=g, dtype=torch.float64) * 3
        if trial % 2:  # make some groups all-equal and some rewards binary
            rewards = torch.where(ids % 3 == 0, torch.ones_like(rewards), (rewards > 0).double())
        if trial >= 3:  # unscored samples (NaN), whole groups of them included
            unscored = (torch.rand(n, generator=g) < 0.3) | (ids == 4)
            rewards = rewards.masked_fill(unscored, math.nan)
        eps = float(torch.rand(1, generator=g)) * 1e-3
        adv, zero = ops.group_advantages(rewards, ids, mode=mode, std=std, eps=eps, singleton=singleton)
        ref, ref_zero = reference(rewards, ids, mode, std, eps, singleton)
        assert adv.dtype == torch.float64
        torch.testing.assert_close(adv, ref, rtol=1e-10, atol=1e-10)
        assert zero.tolist() == ref_zero.tolist()


@pytest.mark.parametrize("mode", ops.advantages.MODES)
def test_all_equal_groups_are_exactly_zero_never_nan(mode):
    # 0.1 * 7 values: a naive std is ~1e-9, not 0, and would blow up (r - mean) / (std + eps)
    r = torch.full((7,), 0.1)
    adv, zero = ops.group_advantages(r, group_size=7, mode=mode, eps=0.0)
    assert torch.equal(adv, torch.zeros(7)) and zero.tolist() == [True]


def test_singleton_rules():
    r = torch.tensor([3.0, 1.0, 2.0])
    ids = torch.tensor([0, 1, 1])
    adv, zero = ops.group_advantages(r, ids)
    assert adv[0] == 0.0 and zero.tolist() == [True, False]
    adv, _ = ops.group_advantages(r, ids, singleton="raw", eps=1e-6)
    assert adv[0].item() == pytest.approx(3.0 / (1 + 1e-6), rel=1e-7)
    adv, _ = ops.group_advantages(r, ids, mode="leave_one_out", singleton="raw")
    assert adv[0] == 3.0


def test_per_group_weights_multiply_final_advantages():
    r = torch.tensor([0.0, 1.0, 0.0, 1.0])
    base, _ = ops.group_advantages(r, group_size=2)
    adv, _ = ops.group_advantages(r, group_size=2, weights=torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(adv, base * torch.tensor([0.5, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"weights must have shape \[2\]"):
        ops.group_advantages(r, group_size=2, weights=torch.ones(4))


def test_low_precision_input_is_computed_in_float32():
    r = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.bfloat16)
    adv, _ = ops.group_advantages(r, group_size=4, eps=0.0)
    assert adv.dtype == torch.float32
    torch.testing.assert_close(adv, torch.tensor([-1.5, 0.5, 0.5, 0.5]))


def test_group_ids_and_group_size_agree():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(24, generator=g)
    a, _ = ops.group_advantages(r, group_size=8)
    b, _ = ops.group_advantages(r, torch.arange(24) // 8)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"group_size": 2, "mode": "grpo"},
            r"unknown mode 'grpo'; valid choices: mean_std, mean, leave_one_out",
        ),
        (
            {"group_size": 2, "std": "sample"},
            r"unknown std 'sample'; valid choices: unbiased, biased",
        ),
        (
            {"group_size": 2, "singleton": "nan"},
            r"unknown singleton 'nan'; valid choices: zero, raw",
        ),
        ({"group_size": 2, "eps": -1.0}, r"eps must be >= 0, got -1.0"),
        ({"group_size": 3}, r"group_size must be a positive int dividing the 4 rewards, got 3"),
        ({"group_ids": torch.tensor([0.0, 0, 1, 1])}, r"group_ids must be an integer tensor"),
        ({"group_ids": torch.tensor([0, 1])}, r"group_ids must have shape \[4\], got \[2\]"),
        ({"group_ids": torch.tensor([0, 0, 1, 1]), "group_size": 2}, "exactly one of"),
        ({}, "exactly one of"),
    ],
)
def test_bad_arguments_say_what_and_the_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.group_advantages(torch.tensor([0.0, 1.0, 2.0, 3.0]), **kwargs)


def test_infinite_rewards_are_named_by_index():
    with pytest.raises(ValueError, match=r"infinite at indices \[1, 3\]"):
        ops.group_advantages(torch.tensor([0.0, -math.inf, 1.0, math.inf]), group_size=2)


def test_unscored_samples_leave_their_group_statistics_and_get_zero():
    # group 0: [1, NaN, 0, 1] is scored as [1, 0, 1]; group 1: all unscored; group 2: one scored
    nan = math.nan
    r = torch.tensor([1.0, nan, 0.0, 1.0, nan, nan, nan, nan, 2.0, nan, nan, nan])
    adv, zero = ops.group_advantages(r, group_size=4, eps=0.0)
    s = math.sqrt(1 / 3)
    expected = [(1 / 3) / s, 0.0, (-2 / 3) / s, (1 / 3) / s] + [0.0] * 8
    torch.testing.assert_close(adv, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert zero.tolist() == [False, True, True]
    raw, _ = ops.group_advantages(r, group_size=4, singleton="raw", mode="mean")
    assert raw[8:].tolist() == [2.0, 0.0, 0.0, 0.0]  # the lone scored sample is the singleton
