"""One RL step on a tiny real model: metrics, a real update, and invariance of the update to
how the batch is split into micro-batches (the step-level normalisers)."""

import copy
import math

import pytest
import torch
from transformers import AutoModelForImageTextToText

import vidrl
from vidrl import Session
from vidrl.engine.step import Algorithm, Learner, StepOptions, rl_step
from vidrl.models.generate import HFGenerate
from vidrl.types import Sampling

pytestmark = pytest.mark.slow


class Length(vidrl.Reward):
    """Response length / 10: varies inside every group, so advantages are never all zero."""

    name = "length"

    def __call__(self, responses, samples):
        return [len(r) / 10 for r in responses]


KEYS = ["reward/mean", "reward/length", "reward/format", "adv/zero_std_frac", "loss", "kl", "clip_frac"]
KEYS += ["grad_norm", "lr", "response_length/mean", "time/rollout", "time/update", "time/step"]


@pytest.fixture(scope="module")
def setup(video_prompts):
    return video_prompts


def _learner(path, processor, optimizer="sgd", reference=False):
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    opt = (
        torch.optim.SGD(model.parameters(), lr=1.0)
        if optimizer == "sgd"
        else torch.optim.AdamW(model.parameters())
    )
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ref = copy.deepcopy(model).eval() if reference else None
    return Learner(model, opt, None, HFGenerate().attach(model), eos, ref)


class Declines(vidrl.Reward):
    """Scores the first two roll-outs of each group of 3 by length, declines (None) the third."""

    name = "declines"

    def __init__(self):
        self.seen = 0

    def __call__(self, responses, samples):
        out = [len(r) / 10 if (self.seen + i) % 3 < 2 else None for i, r in enumerate(responses)]
        self.seen += len(responses)
        return out


def _algo(session, beta=0.0, aggregation="token_mean", rewards=None, loss="ppo_clip", **options):
    loss_cls = session.registry("loss").get(loss)
    fmt = session.create("reward", "format")
    loss = loss_cls(loss_cls.Config(beta=beta, aggregation=aggregation, **options))
    rewards = rewards or [("length", 1.0, Length()), ("format", 1.0, fmt)]
    return Algorithm(session.create("advantage", "grpo"), loss, rewards)


def _step(
    setup,
    micro,
    beta=0.0,
    iterations=1,
    optimizer="sgd",
    max_tokens=0,
    share_prefix=True,
    mask_truncated=False,
    **algo,
):
    path, processor, batch, samples = setup
    learner = _learner(path, processor, optimizer, reference=beta > 0)
    before = [p.detach().clone() for p in learner.model.parameters()]
    opts = StepOptions(group_size=3, micro_batch_size=micro, num_iterations=iterations, max_grad_norm=0.0,
                       sampling=Sampling(max_new_tokens=6),
                       max_tokens_per_micro_batch=max_tokens, share_prefix=share_prefix,
                       mask_truncated=mask_truncated)  # fmt: skip
    torch.manual_seed(123)  # the same roll-outs in every call
    metrics, record = rl_step(
        learner, _algo(Session().load(), beta, **algo), processor.tokenizer, batch, samples, opts
    )
    delta = [p.detach() - b for p, b in zip(learner.model.parameters(), before, strict=True)]
    return metrics, record, delta


def test_step_metrics_and_a_real_update(setup):
    metrics, record, delta = _step(setup, micro=6, beta=0.05)
    for key in KEYS:
        assert key in metrics and math.isfinite(metrics[key]), key
    assert len(record.texts) == 6 and record.samples[0] is record.samples[2]
    assert metrics["grad_norm"] > 0 and sum(float(d.abs().sum()) for d in delta) > 0


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_micro_batching_does_not_change_the_update(setup, beta):
    _, _, whole = _step(setup, micro=6, beta=beta)
    _, _, parts = _step(setup, micro=2, beta=beta)
    _, _, uneven = _step(setup, micro=4, beta=beta)  # 4 + 2
    total = sum(float(d.abs().sum()) for d in whole)
    assert total > 0
    for a, b, c in zip(whole, parts, uneven, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-6)


def test_num_iterations_takes_several_optimizer_steps(setup):
    m1, _, d1 = _step(setup, micro=6, iterations=1, optimizer="adamw")
    m2, _, d2 = _step(setup, micro=6, iterations=2, optimizer="adamw")
    assert sum(float(d.abs().sum()) for d in d2) > sum(float(d.abs().sum()) for d in d1)
    assert m1["reward/mean"] == m2["reward/mean"]  # same roll-outs


@pytest.mark.parametrize("micro", [6, 4])
def test_one_iteration_takes_old_logprobs_from_the_update_itself(setup, monkeypatch, micro):
    """num_iterations 1: no log-prob phase (β = 0), and the same update and metrics as with the
    extra old-log-prob forward."""
    import vidrl.engine.step as step

    m_new, _, d_new = _step(setup, micro=micro)
    monkeypatch.setattr(step, "old_from_update", lambda opts: False)
    m_old, _, d_old = _step(setup, micro=micro)
    assert "time/logprob" not in m_new and "time/logprob" in m_old
    assert sum(float(d.abs().sum()) for d in d_new) > 0
    for a, b in zip(d_new, d_old, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert m_new["clip_frac"] == m_old["clip_frac"] == 0.0 and m_new["loss"] == m_old["loss"]


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_token_budgets_split_micro_batches_without_changing_the_update(setup, beta):
    """A token budget splits the 6 roll-outs into more, smaller forwards (each trimmed of the
    padding its rows do not need); the update equals the one-forward step's."""
    from vidrl.engine.rollout import trimmed_lengths
    from vidrl.engine.step import micro_batches

    _, _, whole = _step(setup, micro=6, beta=beta)
    metrics, record, _ = _step(setup, micro=6, beta=beta)
    gen = record.generation
    full = len(gen.response_ids) * sum(trimmed_lengths(gen, slice(None)))
    for budget in (full // 2, full // 5, 1):
        parts = micro_batches(gen, 6, budget)
        assert len(parts) > 1 and [p.start for p in parts] == [0] + [p.stop for p in parts[:-1]]
        assert parts[-1].stop == 6
        assert all((p.stop - p.start) * sum(trimmed_lengths(gen, p)) <= budget or p.stop - p.start == 1
                   for p in parts)  # fmt: skip
        _, _, split = _step(setup, micro=6, beta=beta, max_tokens=budget)
        for a, b in zip(whole, split, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert micro_batches(gen, 6, 1, multiple=3) == [slice(0, 3), slice(3, 6)]  # whole groups kept


@pytest.mark.parametrize(("micro", "iterations", "beta"), [(6, 1, 0.0), (4, 2, 0.05)])
def test_the_shared_prefix_forward_makes_the_same_update(setup, micro, iterations, beta):
    """Each prompt computed once per micro-batch (old, reference and update forwards alike; 4 rows
    cut a group of 3) gives the per-row forward's metrics and parameter update."""
    m_row, _, per_row = _step(setup, micro=micro, beta=beta, iterations=iterations, share_prefix=False)
    m_shared, _, shared = _step(setup, micro=micro, beta=beta, iterations=iterations)
    for a, b in zip(per_row, shared, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    for key in ("loss", "grad_norm", "clip_frac", "ratio"):
        assert m_shared[key] == pytest.approx(m_row[key], rel=1e-4, abs=1e-6), key


def test_masking_truncated_rollouts_takes_them_out_of_the_loss_only(setup):
    """DAPO's overlong filtering: the same roll-outs and advantages; the rows cut off at the token
    budget leave the loss, so the update is the one of the other rows alone (here: of none, since
    the random tiny model never ends a response within 6 tokens)."""
    from vidrl.engine.step import truncated_rows

    m_all, record, delta = _step(setup, micro=6)
    m_cut, record_cut, delta_cut = _step(setup, micro=6, mask_truncated=True)
    cut = truncated_rows(record.generation, _eos(setup))
    assert m_cut["truncated/masked_frac"] == float(cut.float().mean()) == 1.0
    assert torch.equal(record_cut.advantages.advantages, record.advantages.advantages)
    assert record_cut.generation.response_mask.sum() == 0 and m_all["grad_norm"] > 0 == m_cut["grad_norm"]
    assert all(float(d.abs().sum()) == 0 for d in delta_cut) and any(float(d.abs().sum()) > 0 for d in delta)


def test_micro_token_mean_normalises_each_micro_batch_by_its_own_tokens(setup):
    """TRL's ``bnpo``: the loss is the mean of each micro-batch's token mean, so it equals the
    step-wide token mean when there is one micro-batch and not in general when there are more."""
    m_tok, record, _ = _step(setup, micro=6, aggregation="token_mean")
    m_one, _, _ = _step(setup, micro=6, aggregation="micro_token_mean")
    m_three, _, _ = _step(setup, micro=2, aggregation="micro_token_mean")
    assert m_one["loss"] == pytest.approx(m_tok["loss"], rel=1e-6)
    gen, adv = record.generation, record.advantages.advantages
    mask = gen.response_mask.double()
    per_row = -adv.double()[:, None] * mask  # ratio 1 on-policy: the per-token loss is −A
    means = [float(per_row[i : i + 2].sum() / mask[i : i + 2].sum().clamp(min=1)) for i in (0, 2, 4)]
    assert m_three["loss"] == pytest.approx(sum(means) / 3, rel=1e-5, abs=1e-7)


def test_samples_no_reward_scores_leave_their_groups_statistics(setup):
    """A reward returning None for a roll-out (TRL's "no opinion"): those roll-outs get advantage
    0 and the others the advantages of their group without them."""
    metrics, record, _ = _step(setup, micro=6, rewards=[("declines", 1.0, Declines())])
    adv, scored = record.advantages.advantages, record.scores.scored
    assert scored.tolist() == [True, True, False] * 2 and metrics["reward/unscored_frac"] == pytest.approx(
        1 / 3
    )
    alone, _ = vidrl.ops.group_advantages(record.scores.total[scored], group_size=2)
    assert torch.equal(adv[~scored], torch.zeros(2)) and torch.equal(adv[scored], alone)


def test_rewards_that_need_them_get_each_response_token_count(setup):
    """DAPO's overlong reward is scored on the policy's own tokens, end-of-turn included."""
    cls = Session().load().registry("reward").get("overlong")
    rewards = [("overlong", 1.0, cls(cls.Config(max_length=6, buffer=4))), ("length", 1.0, Length())]
    _, record, _ = _step(setup, micro=6, rewards=rewards)
    lengths = record.generation.response_mask.sum(1).tolist()
    expected = [0.0 if n <= 2 else (2 - n) / 4 for n in lengths]
    assert record.scores.per_reward["overlong"].tolist() == pytest.approx(expected) and min(expected) < 0


def test_high_entropy_training_gets_entropies_from_the_update_forward(setup):
    """ρ = 1 makes the same update as ppo_clip; ρ = 0.2 trains on fewer tokens, a different update."""
    _, _, plain = _step(setup, micro=4)
    m_all, _, every = _step(setup, micro=4, loss="high_entropy", rho=1.0)
    m_top, _, top = _step(setup, micro=4, loss="high_entropy", rho=0.2, aggregation="micro_token_mean")
    for a, b in zip(plain, every, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    assert m_all["entropy/kept_frac"] == 1.0 and 0.2 <= m_top["entropy/kept_frac"] < 0.5
    assert m_top["entropy/kept_mean"] > m_top["entropy"] > 0 and m_all["entropy"] == pytest.approx(
        m_top["entropy"]
    )
    assert any(not torch.allclose(a, b) for a, b in zip(plain, top, strict=True))


def _eos(setup):
    return setup[1].tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_every_rank_runs_as_many_micro_batches(setup):
    """Ranks plan on their own rows; with a token budget their counts may differ, and a rank
    with fewer splits its largest parts (whole groups kept) to the largest count."""
    from vidrl.engine.step import Collective, plan
    from vidrl.plugin.components import Need

    class Wants(Collective):
        def max(self, value):
            return 5

    _, record, _ = _step(setup, micro=6)
    gen = record.generation
    opts = StepOptions(group_size=3, micro_batch_size=6, max_tokens_per_micro_batch=10**6)
    assert plan(gen, opts, set(), Collective()) == [slice(0, 6)]
    parts = plan(gen, opts, set(), Wants())
    assert (
        len(parts) == 5
        and [p.start for p in parts] == [0] + [p.stop for p in parts[:-1]]
        and parts[-1].stop == 6
    )
    groups = plan(gen, opts, {Need.WHOLE_GROUPS}, type("Two", (Collective,), {"max": lambda s, v: 2})())
    assert groups == [slice(0, 3), slice(3, 6)]
