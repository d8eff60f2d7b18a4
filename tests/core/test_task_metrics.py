"""Per-task training metrics of a mixed-task batch: reward, accuracy / mIoU, zero-std share and
group weight, each over that task's rollouts and groups only."""

import pytest
import torch

from vidrl import Advantages, Sample
from vidrl.engine.step_metrics import task_metrics
from vidrl.types import Scores

MC = Sample("m", "q", "A", "multiple_choice", options=("a", "b"))
TG = Sample("t", "q", "1-3", "temporal_grounding", span=(1.0, 3.0))


def test_metrics_per_task():
    samples = [MC, MC, TG, TG, MC, MC]  # three groups of two: MC, TG, MC
    texts = ["<answer>A</answer>", "<answer>B</answer>", "<answer>1-3</answer>", "<answer>2-3</answer>",
             "<answer>A</answer>", "<answer>A</answer>"]  # fmt: skip
    scores = Scores(torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 1.0]), {})
    adv = Advantages(torch.zeros(6), torch.tensor([False, False, True]), torch.tensor([0.5, 1.0, 0.75]))
    out = task_metrics(samples, texts, scores, adv, group_size=2)
    assert out == pytest.approx(
        {
            "adv/weight_mean": 0.75,
            "task/multiple_choice/reward": 0.75,
            "task/multiple_choice/accuracy": 0.75,
            "task/multiple_choice/zero_std_frac": 0.5,
            "task/multiple_choice/weight": 0.625,
            "task/temporal_grounding/reward": 0.75,
            "task/temporal_grounding/miou": 0.75,
            "task/temporal_grounding/zero_std_frac": 0.0,
            "task/temporal_grounding/weight": 1.0,
        }
    )
