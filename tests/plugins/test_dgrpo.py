"""DGRPO: the difficulty weight on hand-computed groups, equivalence with GRPO on hard groups,
the temporal-IoU cut per task and source, and loading by entry point."""

import pytest
import torch
from references import group_advantages as ref_group_advantages

import vidrl
from vidrl import Sample, Session


def _dgrpo(**options):
    cls = Session().load().registry("advantage").get("dgrpo")
    return cls(cls.Config(**options))


def _grpo(**options):
    cls = Session().load().registry("advantage").get("grpo")
    return cls(cls.Config(**options))


def test_weights_on_hand_computed_groups():
    # group means (c = 2): 2.5 (above c: w 0.5), 1.5 (w 0.75), 0.5 (<= c - 1: w 1), 2.0 (all equal, w 0.5)
    rewards = torch.tensor([2.0, 3.0, 1.0, 2.0, 0.0, 1.0, 2.0, 2.0])
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = _dgrpo()(rewards, ids)
    torch.testing.assert_close(out.group_weights, torch.tensor([0.5, 0.75, 1.0, 0.5]))
    z = 0.5 / (2**0.5 / 2 + 1e-6)  # each pair: |R - mean| = 0.5, unbiased std = 1 / sqrt(2)
    expected = torch.tensor([-0.5 * z, 0.5 * z, -0.75 * z, 0.75 * z, -z, z, 0.0, 0.0])
    torch.testing.assert_close(out.advantages, expected)
    assert out.zero_std.tolist() == [False, False, False, True] and out.zero_std_frac == 0.25


def test_a_group_mean_below_c_minus_one_keeps_the_full_weight_and_c_moves_the_threshold():
    means = torch.tensor([-3.0, 0.0, 0.99, 1.0, 1.25, 2.0, 9.0])
    from vidrl.plugins.dgrpo import difficulty_weights

    torch.testing.assert_close(difficulty_weights(means, 2.0), torch.tensor([1, 1, 1, 1, 0.875, 0.5, 0.5]))
    torch.testing.assert_close(
        difficulty_weights(means, 1.0), torch.tensor([1, 1, 0.505, 0.5, 0.5, 0.5, 0.5])
    )


@pytest.mark.parametrize("scale_std", [True, False])
def test_equals_grpo_when_every_group_is_hard(scale_std):
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(7 * 5, generator=g)  # means in [0, 1] <= c - 1 = 1
    ids = torch.randint(0, 7, (35,), generator=g)
    a = _dgrpo(scale_std=scale_std)(rewards, ids)
    b = _grpo(scale_std=scale_std)(rewards, ids)
    torch.testing.assert_close(a.advantages, b.advantages, rtol=0, atol=0)
    assert a.group_weights.eq(1).all()


def test_against_the_fp64_reference_with_weights():
    g = torch.Generator().manual_seed(1)
    rewards = torch.rand(24, generator=g) * 3
    ids = torch.arange(6).repeat_interleave(4)
    out = _dgrpo(c=2.5, std="biased", eps=1e-4)(rewards, ids)
    means = rewards.double().view(6, 4).mean(1)
    w = ((2.5 - means).clamp(0, 1) + 1) / 2
    plain, _ = ref_group_advantages(
        rewards.double(), ids, mode="mean_std", std="biased", eps=1e-4, singleton="zero"
    )
    torch.testing.assert_close(out.advantages.double(), plain * w[ids], rtol=1e-6, atol=1e-6)


def _iou_reward(**options):
    cls = Session().load().registry("reward").get("temporal_iou")
    return cls(cls.Config(**options))


def _tg(source=None, task="temporal_grounding"):
    return Sample("s", "q", "x", task, span=(2.0, 6.0), metadata={"source": source} if source else {})


@pytest.mark.parametrize(
    ("answer", "source", "expected"),
    [
        ("<answer>2.0-6.0</answer>", None, 1.0),  # IoU 1 ≥ β
        ("<answer>2.0-5.6</answer>", None, 1.0),  # IoU 0.9 ≥ β = 0.8: capped
        ("<answer>2.0-5.2</answer>", None, 1.0),  # IoU 0.8 = β
        ("<answer>2.0-4.0</answer>", None, 0.5),  # IoU 0.5: (0.5 − 0.2) / 0.6
        ("<answer>2.0-2.8</answer>", None, 0.0),  # IoU 0.2 = α
        ("<answer>7-9</answer>", None, 0.0),  # no overlap
        ("<answer>2.0-4.0</answer>", "vidchapters", 1.0),  # (0, 0.5): IoU 0.5 = β
        ("<answer>2.0-3.0</answer>", "vidchapters", 0.5),  # IoU 0.25 / 0.5
    ],
)
def test_the_iou_cut_at_its_bounds(answer, source, expected):
    reward = _iou_reward(alpha=0.2, beta=0.8, by_source={"vidchapters": (0.0, 0.5)})
    assert reward([answer], [_tg(source)]) == [pytest.approx(expected)]


def test_cut_per_task_type_and_bad_cuts():
    reward = _iou_reward(by_task={"temporal_grounding": (0.5, 1.0)})
    assert reward.cut(_tg()) == (0.5, 1.0)
    with pytest.raises(ValueError, match="0 <= alpha < beta <= 1"):
        _iou_reward(by_source={"x": (0.6, 0.5)})
    with pytest.raises(ValueError, match="unknown task types"):
        _iou_reward(by_task={"grounding": (0.1, 0.9)})


def test_loaded_by_entry_point_and_disabled_by_environment():
    assert "dgrpo" in Session().load().registry("advantage")
    assert vidrl.Session().load().plugins["dgrpo"].distribution == "vidrl"
    off = Session(environ={"VIDRL_DISABLE_PLUGINS": "dgrpo"}).load()
    assert "dgrpo" not in off.registry("advantage")
