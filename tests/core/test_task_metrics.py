"""Per-task training metrics of a mixed-task batch: reward, accuracy / mIoU, zero-std share and
group weight, each over that task's rollouts and groups only."""

import pytest
import torch

from vidrl import Advantages, Sample
from vidrl.engine.step import Collective
from vidrl.engine.step_metrics import over_ranks, task_metrics
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


class TwoRanks(Collective):
    size = 2

    def __init__(self, other):
        self.other = other

    def gather(self, obj):
        return [obj, self.other]


def test_metrics_over_ranks_sum_the_loss_and_counts_and_average_the_rest():
    """Each rank's loss is its share of the step's loss (whole-step normalisers): summed; extremes
    by their extreme; a task only one rank drew is averaged over that rank alone."""
    mine = {"loss": 0.25, "reward/mean": 1.0, "data/skipped": 1.0, "task/numeric/reward": 0.5,
            "response_length/min": 3.0, "response_length/max": 9.0}  # fmt: skip
    theirs = {"loss": 0.5, "reward/mean": 0.0, "data/skipped": 2.0, "task/free_form/reward": 0.75,
              "response_length/min": 2.0, "response_length/max": 7.0}  # fmt: skip
    out = over_ranks(TwoRanks(theirs), mine)
    assert out == {"loss": 0.75, "reward/mean": 0.5, "data/skipped": 2.0, "task/numeric/reward": 0.5,
                   "response_length/min": 2.0, "response_length/max": 9.0,
                   "task/free_form/reward": 0.75}  # fmt: skip
    assert over_ranks(Collective(), mine) is mine
