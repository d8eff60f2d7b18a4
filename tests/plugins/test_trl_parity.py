"""docs/migrating.md checked against TRL itself: each case of tests/fixtures/trl_parity.json holds
a GRPOConfig, the vidrl configuration the table maps it to, the fixed inputs and what TRL 1.16
computed from them (benchmarks/trl_parity.py wrote it, running TRL's GRPOTrainer). vidrl's
components must give the same advantages, step loss and loss gradient."""

import json
import re
from pathlib import Path

import pytest
import torch

import vidrl
from vidrl import Session
from vidrl.engine.scoring import score

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "trl_parity.json").read_text())
SHAPE = FIXTURE["shape"]
P, G, T, GA = SHAPE["prompts"], SHAPE["group_size"], SHAPE["tokens"], SHAPE["accumulation"]
SESSION = Session().load()


def _create(kind, spec):
    cls = SESSION.registry(kind).get(spec["name"])
    return cls(cls.Config(**spec["options"]))


class Fixed(vidrl.Reward):
    """Returns the fixture's scores (None included) for the B roll-outs, in order."""

    name = "fixed"

    def __init__(self, values):
        self.values = values

    def __call__(self, responses, samples):
        return list(self.values)


@pytest.mark.parametrize("case", FIXTURE["advantage_cases"], ids=lambda c: c["name"])
def test_advantages_equal_trls(case):
    """TRL's reward functions (weights, None) → vidrl's rewards and scorer; its scale_rewards and
    eps → vidrl's estimator options (TRL computes in float32)."""
    rewards = [
        (f"r{k}", w, Fixed(v)) for k, (v, w) in enumerate(zip(case["scores"], case["weights"], strict=True))
    ]
    samples = [vidrl.Sample(f"p{i // G}", "q", "1") for i in range(P * G)]
    scores = score(rewards, [""] * (P * G), samples)
    estimator = _create("advantage", case["vidrl"]["advantage"])
    adv = estimator(scores.for_estimator(), torch.arange(P).repeat_interleave(G)).advantages
    torch.testing.assert_close(adv.double(), torch.tensor(case["advantages"], dtype=torch.float64),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def _step_loss(loss, x, micro_batches):
    """The step's loss over ``micro_batches`` consecutive micro-batches, normalised as the engine
    does (the whole step's token and sequence counts, the micro-batch count), and its gradient
    with respect to the log-probs [B, T]."""
    lp = x["logprobs"].clone().requires_grad_(True)
    mask = x["mask"]
    b = lp.shape[0]
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, b, b // micro_batches):
        rows = slice(start, start + b // micro_batches)
        inputs = vidrl.LossInputs(
            lp[rows], x["advantages"][rows], mask[rows], torch.arange(b)[rows] // G,
            step_tokens=float(mask.sum()), step_sequences=float(b), old_logprobs=x["old_logprobs"][rows],
            ref_logprobs=x["ref_logprobs"][rows], step_micro_batches=micro_batches,
            entropies=x["entropies"][rows],
        )  # fmt: skip
        total = total + loss(inputs).loss
    (grad,) = torch.autograd.grad(total, lp)
    return total, grad


@pytest.mark.parametrize("case", FIXTURE["loss_cases"], ids=lambda c: c["name"])
def test_step_loss_and_gradient_equal_trls(case):
    """TRL's loss_type, epsilons, beta, KL correction, delta, importance-sampling level and
    entropy quantile → vidrl's loss and options, over the same two accumulated micro-batches."""
    x = {k: torch.tensor(v, dtype=torch.float64) for k, v in FIXTURE["inputs"].items()}
    loss, grad = _step_loss(_create("loss", case["vidrl"]["loss"]), x, GA)
    assert float(loss.detach()) == pytest.approx(case["loss"], rel=1e-10, abs=1e-12)
    torch.testing.assert_close(grad, torch.tensor(case["grad"], dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_the_fixture_covers_every_case_of_the_migration_table():
    """Every TRL option the fixture checks is named in docs/migrating.md."""
    table = (Path(__file__).parents[2] / "docs" / "migrating.md").read_text()
    for case in FIXTURE["advantage_cases"] + FIXTURE["loss_cases"]:
        for field in case["trl"]:
            assert re.search(rf"`{field}(`|: )", table), field
