"""KL estimators and loss aggregation: hand values and micro-batch invariance."""

import math

import pytest
import torch

from vidrl import ops


def test_kl_estimators_hand_values():
    lp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])  # d = ref − lp = [−0.5, 1.0]
    assert ops.kl_penalty(lp, ref, "k1").tolist() == [[0.5, -1.0]]
    assert ops.kl_penalty(lp, ref, "k2").tolist() == [[0.125, 0.5]]
    torch.testing.assert_close(
        ops.kl_penalty(lp, ref, "k3"), torch.tensor([[math.exp(-0.5) - 0.5, math.e - 2]])
    )
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'; valid choices: k1, k2, k3"):
        ops.kl_penalty(lp, ref, "k4")


def test_k3_is_unbiased_and_nonnegative():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    exact = (p * (p / q).log()).sum()
    # expectation over y ~ p, taken exactly by weighting each outcome with p(y)
    for est in ("k1", "k3"):
        e = (p * ops.kl_penalty(p.log(), q.log(), est)).sum()
        torch.testing.assert_close(e, exact)
    assert (ops.kl_penalty(p.log(), q.log(), "k3") >= 0).all()


def test_aggregation_hand_values():
    per = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert ops.aggregate(per, mask, "token_mean", 4, 2).item() == pytest.approx(10 / 4)
    assert ops.aggregate(per, mask, "sequence_mean", 4, 2).item() == pytest.approx((2 + 4) / 2)
    assert ops.aggregate(per, mask, "constant", 4, 2, max_length=5).item() == pytest.approx(10 / 10)


def test_micro_token_mean_is_the_mean_of_each_micro_batch_token_mean():
    """TRL's ``bnpo``: each micro-batch normalised by its own tokens, over the step's micro-batches."""
    g = torch.Generator().manual_seed(2)
    per = torch.randn(7, 5, generator=g, dtype=torch.float64)
    mask = (torch.rand(7, 5, generator=g) > 0.4).long()
    mask[4] = 0
    cuts = [(0, 2), (2, 5), (5, 7)]
    got = sum(ops.aggregate(per[a:b], mask[a:b], "micro_token_mean", 0, 0, micro_batches=3) for a, b in cuts)
    means = [float((per[a:b] * mask[a:b]).sum() / mask[a:b].sum()) for a, b in cuts]
    assert float(got) == pytest.approx(sum(means) / 3, rel=1e-12)
    assert ops.aggregate(per[:1], torch.zeros(1, 5), "micro_token_mean", 0, 0, micro_batches=2).item() == 0.0


@pytest.mark.parametrize("mode", [m for m in ops.AGGREGATIONS if m != "micro_token_mean"])
def test_micro_batches_sum_to_the_full_step(mode):
    g = torch.Generator().manual_seed(1)
    per = torch.randn(8, 6, generator=g)
    mask = (torch.rand(8, 6, generator=g) > 0.3).long()
    mask[3] = 0  # an empty response adds nothing, and no NaN
    tokens, seqs = float(mask.sum()), 8.0
    full = ops.aggregate(per, mask, mode, tokens, seqs, max_length=6)
    parts = sum(
        ops.aggregate(per[i : i + 3], mask[i : i + 3], mode, tokens, seqs, max_length=6) for i in (0, 3, 6)
    )
    torch.testing.assert_close(parts, full)
    assert torch.isfinite(full)


def test_all_masked_step_is_zero_not_nan():
    per = torch.randn(2, 3)
    for mode in ops.AGGREGATIONS:
        assert ops.aggregate(per, torch.zeros(2, 3), mode, 0, 2, max_length=3).item() == 0.0


def test_bad_aggregation():
    with pytest.raises(ValueError, match="unknown aggregation 'mean'; valid choices: token_mean"):
        ops.aggregate(torch.ones(1, 1), torch.ones(1, 1), "mean", 1, 1)
    with pytest.raises(ValueError, match="needs max_length >= 1"):
        ops.aggregate(torch.ones(1, 1), torch.ones(1, 1), "constant", 1, 1)
