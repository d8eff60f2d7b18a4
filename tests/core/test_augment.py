"""The augment phase's bookkeeping: the batch used takes a replaced prompt's rows from the
second roll-out and every other row from the first, response ids padded to the longer one."""

import pytest
import torch

from vidrl import Sample
from vidrl.engine.augment import Rollouts, merge, zero_std_share
from vidrl.types import Generation, Scores


def _rollouts(tag, width, samples, g=2):
    b = len(samples) * g
    ids = torch.arange(b * width).view(b, width) + (1000 if tag == "new" else 0)
    gen = Generation({}, ids, torch.ones(b, width, dtype=torch.long))
    rep = [s for s in samples for _ in range(g)]
    total = torch.arange(b, dtype=torch.float32) + (100 if tag == "new" else 0)
    return Rollouts(gen, [f"{tag}{i}" for i in range(b)], rep, Scores(total, {"r": total.clone()}))


def test_merge_takes_replaced_groups_from_the_second_roll_out():
    a, b, c = (Sample(x, "q", "1") for x in "abc")
    first = _rollouts("old", 3, [a, b, c])
    b2 = Sample("b", "q + hint", "1")
    second = _rollouts("new", 5, [b2])
    prompt = {
        "input_ids": torch.zeros(3, 4, dtype=torch.long),
        "attention_mask": torch.ones(3, 4, dtype=torch.long),
    }
    used = merge(first, second, [1], prompt, g=2, pad_id=-1)
    assert used.texts == ["old0", "old1", "new0", "new1", "old4", "old5"]
    assert [s.question for s in used.samples] == ["q", "q", "q + hint", "q + hint", "q", "q"]
    assert used.scores.total.tolist() == [0, 1, 100, 101, 4, 5] == used.scores.per_reward["r"].tolist()
    ids, mask = used.gen.response_ids, used.gen.response_mask
    assert (
        ids.shape == (6, 5) and ids[0].tolist() == [0, 1, 2, -1, -1] and mask[0].tolist() == [1, 1, 1, 0, 0]
    )
    assert ids[2].tolist() == [1000, 1001, 1002, 1003, 1004] and mask[2].tolist() == [1] * 5
    assert used.gen.prompt["input_ids"].shape == (6, 4)  # every prompt repeated G times


def test_zero_std_share():
    assert zero_std_share(torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 2.0]), 2) == pytest.approx(2 / 3)
