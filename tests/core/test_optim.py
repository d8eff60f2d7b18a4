"""Learning-rate schedules at their boundaries, and the optimizer they drive."""

import math

import pytest
import torch

from vidrl.engine.optim import OptimConfig, build_optimizer, lr_factor


def test_warmup_then_constant():
    c = OptimConfig(warmup_steps=3)
    assert [lr_factor(c, s, 10) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_linear_and_cosine_reach_the_floor_at_the_end():
    lin = OptimConfig(schedule="linear", min_lr_ratio=0.1)
    cos = OptimConfig(schedule="cosine", warmup_steps=2)
    assert lr_factor(lin, 0, 10) == 1.0 and lr_factor(lin, 5, 10) == pytest.approx(0.55)
    assert lr_factor(lin, 10, 10) == pytest.approx(0.1)
    assert lr_factor(cos, 2, 12) == 1.0 and lr_factor(cos, 12, 12) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(cos, 7, 12) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_the_scheduler_sets_the_optimizer_lr():
    model = torch.nn.Linear(2, 2)
    opt, sched = build_optimizer(model, OptimConfig(lr=0.1, schedule="linear"), total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.075, 0.05, 0.025])


@pytest.mark.parametrize(
    "bad", [dict(lr=0), dict(min_lr_ratio=2), dict(betas=(0.9, 1.0)), dict(warmup_steps=-1)]
)
def test_bad_options(bad):
    with pytest.raises(ValueError, match="need"):
        OptimConfig(**bad)


def test_a_frozen_model_is_an_error():
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, OptimConfig(), 1)
