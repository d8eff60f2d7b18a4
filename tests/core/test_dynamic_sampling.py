"""DAPO's dynamic sampling: uninformative groups dropped, the batch refilled from further prompt
batches up to a cap, then completed with dropped groups; what is drawn, kept and prepared."""

import math

import pytest
import torch

from vidrl import Sample
from vidrl.engine.augment import Rollouts
from vidrl.engine.dynamic_sampling import informative, refill
from vidrl.types import Generation, Scores

G = 2
NAN = math.nan


def _rollouts(tag, samples, rewards, width):
    """G roll-outs per sample: response ids tagged by batch, texts '<tag><row>', the rewards given."""
    b = len(samples) * G
    ids = torch.arange(b * width).view(b, width) + 1000 * tag
    gen = Generation({}, ids, torch.ones(b, width, dtype=torch.long))
    per = torch.tensor(rewards, dtype=torch.float32)
    total = torch.nan_to_num(per, nan=0.0)
    rep = [s for s in samples for _ in range(G)]
    return Rollouts(gen, [f"{tag}:{i}" for i in range(b)], rep, Scores(total, {"r": per}))


class Source:
    """The feed and the policy: further prompt batches, each with fixed rewards."""

    def __init__(self, batches):
        self.batches, self.drawn, self.prepared = list(batches), 0, []

    def draw(self):
        samples, _ = self.batches[self.drawn]
        self.drawn += 1
        return samples, [f"clip-{s.id}" for s in samples]

    def roll(self, prompt, samples):
        tag = [i for i, (ss, _) in enumerate(self.batches) if ss == list(samples)][0] + 1
        return _rollouts(tag, samples, self.batches[tag - 1][1], width=3 + tag)

    def prepare(self, samples, clips):
        self.prepared.append(([s.id for s in samples], list(clips)))
        n = len(samples)
        return {"input_ids": torch.zeros(n, 4, dtype=torch.long), "attention_mask": torch.ones(n, 4)}


def _s(*ids):
    return [Sample(i, f"q{i}", "1") for i in ids]


def _first():
    # group a: informative; b: all equal; c: one scored reward only (not informative)
    return _rollouts(0, _s("a", "b", "c"), [0, 1, 1, 1, NAN, 1], width=2), ["clip-a", "clip-b", "clip-c"]


def _source():
    return Source([(_s("d", "e"), [1, 0, 0, 0]), (_s("f", "g"), [2, 3, 5, 5])])


def test_informative_groups_need_two_differing_scored_rewards():
    assert informative(_first()[0].scores, G) == [True, False, False]


def test_refill_draws_until_the_batch_holds_only_informative_groups():
    first, clips = _first()
    src = _source()
    used, metrics = refill(first, clips, src.draw, src.roll, src.prepare, G, max_draws=10, pad_id=-1)
    assert src.drawn == 2 and metrics == {
        "dynamic/informative_frac": pytest.approx(1 / 3),
        "dynamic/batches": 3.0,
        "dynamic/filled_frac": 0.0,
    }
    assert [s.id for s in used.samples] == ["a", "a", "d", "d", "f", "f"]
    assert used.texts == ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1"]
    assert used.scores.total.tolist() == [0, 1, 1, 0, 2, 3] == used.scores.per_reward["r"].tolist()
    assert src.prepared[-1] == (["a", "d", "f"], ["clip-a", "clip-d", "clip-f"])  # the batch trained on
    ids, mask = used.gen.response_ids, used.gen.response_mask
    assert (
        ids.shape == (6, 5) and ids[0].tolist() == [0, 1, -1, -1, -1] and mask[0].tolist() == [1, 1, 0, 0, 0]
    )
    assert ids[4].tolist() == [2000, 2001, 2002, 2003, 2004] and used.gen.prompt["input_ids"].shape == (6, 4)


def test_the_cap_completes_the_batch_with_dropped_groups_in_the_order_drawn():
    first, clips = _first()
    src = _source()
    used, metrics = refill(first, clips, src.draw, src.roll, src.prepare, G, max_draws=2, pad_id=-1)
    assert src.drawn == 1 and metrics["dynamic/batches"] == 2.0
    assert metrics["dynamic/filled_frac"] == pytest.approx(1 / 3)
    assert [s.id for s in used.samples[::G]] == ["a", "d", "b"]


def test_an_all_informative_batch_is_trained_on_as_drawn():
    first = _rollouts(0, _s("a", "b"), [0, 1, 2, 1], width=2)
    src = _source()
    used, metrics = refill(first, ["x", "y"], src.draw, src.roll, src.prepare, G, max_draws=3, pad_id=-1)
    assert used is first and src.drawn == 0 and src.prepared == [] and metrics["dynamic/batches"] == 1.0


def test_max_draws_must_be_positive():
    first, clips = _first()
    src = _source()
    with pytest.raises(ValueError, match="max_draws must be >= 1"):
        refill(first, clips, src.draw, src.roll, src.prepare, G, max_draws=0, pad_id=-1)
