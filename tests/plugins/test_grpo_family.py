"""The GRPO-family estimators, reached by name through the entry-point-loaded plugin."""

import math

import pytest
import torch

import vidrl
from vidrl import Session


@pytest.fixture(scope="module")
def session():
    return Session().load()


def _estimate(session, name, rewards, ids, **options):
    cls = session.registry("advantage").get(name)
    return session.create("advantage", name, cls.Config(**options))(torch.tensor(rewards), torch.tensor(ids))


def test_grpo_hand_values(session):
    out = _estimate(session, "grpo", [1.0, 0.0, 0.0, 0.0, 1.0, 1.0], [7, 7, 7, 7, 3, 3], eps=0.0)
    # id 7: [1, 0, 0, 0] mean 0.25, unbiased std sqrt(0.25); id 3: all equal
    s = math.sqrt(0.25)
    torch.testing.assert_close(
        out.advantages, torch.tensor([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s, 0.0, 0.0])
    )
    assert out.zero_std.tolist() == [True, False]  # ordered by ascending id: 3, then 7
    assert out.zero_std_frac == 0.5


def test_grpo_without_std_equals_dr_grpo(session):
    r, ids = [1.0, 0.5, 0.0, 2.0, 2.0, 1.0], [0, 0, 0, 1, 1, 1]
    a = _estimate(session, "grpo", r, ids, scale_std=False)
    b = _estimate(session, "dr_grpo", r, ids)
    torch.testing.assert_close(a.advantages, torch.tensor([0.5, 0.0, -0.5, 1 / 3, 1 / 3, -2 / 3]))
    assert torch.equal(a.advantages, b.advantages)


def test_rloo_hand_values(session):
    out = _estimate(session, "rloo", [1.0, 0.0, 0.0], [0, 0, 0])
    torch.testing.assert_close(out.advantages, torch.tensor([1.0, -0.5, -0.5]))


def test_trl_and_verl_semantics(session):
    r, ids = [0.0, 1.0, 5.0], [0, 0, 1]  # the 5.0 is a singleton group
    trl = _estimate(session, "grpo", r, ids, eps=1e-4)
    verl = _estimate(session, "grpo", r, ids, singleton="raw")
    s = math.sqrt(0.5)
    torch.testing.assert_close(trl.advantages, torch.tensor([-0.5 / (s + 1e-4), 0.5 / (s + 1e-4), 0.0]))
    torch.testing.assert_close(
        verl.advantages, torch.tensor([-0.5 / (s + 1e-6), 0.5 / (s + 1e-6), 5.0 / (1 + 1e-6)])
    )


def _all_estimators():
    s = Session().load()
    return s.registry("advantage").names()


@pytest.mark.parametrize("name", _all_estimators())
def test_every_registered_estimator_honours_the_contract(session, name):
    """Shapes [B] → [B] and [num_groups]; finite; all-equal groups get exactly 0."""
    g = torch.Generator().manual_seed(1)
    ids = torch.arange(5).repeat_interleave(4)
    rewards = torch.rand(20, generator=g)
    rewards[:4] = 0.5  # group 0 all equal
    out = session.create("advantage", name)(rewards, ids)
    assert isinstance(out, vidrl.Advantages)
    assert out.advantages.shape == (20,) and out.zero_std.shape == (5,) and out.group_weights.shape == (5,)
    assert torch.isfinite(out.advantages).all()
    assert torch.equal(out.advantages[:4], torch.zeros(4)) and out.zero_std[0]


@pytest.mark.parametrize(
    ("name", "config"), [(name, {}) for name in _all_estimators()] + [("grpo", {"std_scope": "batch"})]
)
def test_every_registered_estimator_leaves_unscored_samples_out(session, name, config):
    """A NaN reward (no reward scored the sample, TRL's all-None rule): advantage 0, and the
    other samples get exactly what they get with the unscored ones removed from the batch."""
    cls = session.registry("advantage").get(name)
    g = torch.Generator().manual_seed(7)
    ids = torch.arange(6).repeat_interleave(4)
    rewards = torch.rand(24, generator=g, dtype=torch.float64)
    unscored = torch.rand(24, generator=g) < 0.3
    unscored[8:12] = True  # a whole group unscored
    unscored[12:15] = True  # a group with one scored sample
    estimator = cls(cls.Config(**config))
    out = estimator(rewards.masked_fill(unscored, float("nan")), ids)
    alone = estimator(rewards[~unscored], ids[~unscored])
    assert torch.equal(out.advantages[unscored], torch.zeros(int(unscored.sum()), dtype=out.advantages.dtype))
    torch.testing.assert_close(out.advantages[~unscored], alone.advantages, rtol=1e-12, atol=1e-12)
    assert out.zero_std[2] and out.zero_std[3]  # no scored reward; a single one


def test_batch_level_std_matches_the_fp64_reference(session):
    """``std_scope: batch`` (TRL's ``scale_rewards: batch``): (R_i − mean of its group) / (std of
    the whole batch + eps), groups of unequal sizes, a singleton and an all-equal group included."""
    cls = session.registry("advantage").get("grpo")
    g = torch.Generator().manual_seed(5)
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    rewards = torch.randn(10, generator=g, dtype=torch.float64)
    rewards[3:5] = 0.5  # group 1: all equal
    for std, eps in (("unbiased", 1e-4), ("biased", 1e-6)):
        out = cls(cls.Config(std_scope="batch", std=std, eps=eps))(rewards, ids)
        scale = float(rewards.std(unbiased=std == "unbiased")) + eps
        expected = []
        for i in range(10):
            members = [float(rewards[j]) for j in range(10) if ids[j] == ids[i]]
            centred = 0.0 if len(members) == 1 else float(rewards[i]) - sum(members) / len(members)
            expected.append(centred / scale)
        torch.testing.assert_close(
            out.advantages, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12
        )
        assert out.zero_std.tolist() == [False, True, True, False]  # the all-equal group, the singleton
