"""The plugin contract as the engine enforces it: component outputs checked with errors that
name the component and its plugin, needs consulted, the frozen ``RolloutBatch`` that event-hook
listeners receive, the typed per-sample stash, and component state in checkpoints."""

import dataclasses

import pytest
import torch

import vidrl
import vidrl.testing as vt
from vidrl.engine.checks import check_advantages, check_augmented, check_loss_output
from vidrl.engine.step import Algorithm, StepOptions, rl_step
from vidrl.types import Sampling

pytestmark = pytest.mark.slow


class Mine:
    """An in-process plugin registering deliberately broken components."""

    @vidrl.hookimpl
    def register_advantage_estimators(self, register):
        register(WrongShape)

    @vidrl.hookimpl
    def register_policy_losses(self, register):
        register(BareTensor)
        register(NoOldLogprobs)


class WrongShape(vidrl.AdvantageEstimator):
    """Returns one advantage per group instead of one per roll-out."""

    name = "wrong_shape"

    def __call__(self, rewards, group_ids):
        n = int(group_ids.max()) + 1
        return vidrl.Advantages(torch.zeros(n), torch.zeros(n, dtype=torch.bool), torch.ones(n))


class BareTensor(vidrl.PolicyLoss):
    """Returns a bare tensor, not a LossOutput."""

    name = "bare_tensor"

    def __call__(self, inputs):
        return -(inputs.logprobs * inputs.mask).sum()


class NoOldLogprobs(vidrl.PolicyLoss):
    """REINFORCE without a ratio: declares no need, so gets no old log-probs. Records what it saw."""

    name = "no_old"
    seen: list = []

    def __call__(self, inputs):
        NoOldLogprobs.seen.append((inputs.old_logprobs, inputs.ref_logprobs))
        adv = inputs.advantages[:, None] if inputs.advantages.dim() == 1 else inputs.advantages
        return vidrl.LossOutput(-(adv * inputs.logprobs * inputs.mask).sum() / inputs.step_tokens)


@pytest.fixture(scope="module")
def session():
    s = vidrl.Session()
    s.add_plugin(Mine(), "mine")
    return s.load()


def test_output_checks_name_the_component_and_its_plugin(session):
    wrong = session.create("advantage", "wrong_shape")
    with pytest.raises(vidrl.ComponentError) as e:
        check_advantages(wrong, wrong(torch.ones(6), torch.arange(2).repeat_interleave(3)), 6, 4, 2)
    msg = "advantage 'wrong_shape' (plugin 'mine') returned advantages of shape [2]; expected [6] or [6, 4]"
    assert msg in str(e.value)
    bare = session.create("loss", "bare_tensor")
    with pytest.raises(vidrl.ComponentError, match=r"loss 'bare_tensor' \(plugin 'mine'\) returned Tensor"):
        check_loss_output(bare, torch.zeros(()))
    loss = session.create("loss", "no_old")
    with pytest.raises(vidrl.ComponentError, match="non-finite loss"):
        check_loss_output(loss, vidrl.LossOutput(torch.tensor(float("nan"), requires_grad=True)))
    with pytest.raises(vidrl.ComponentError, match="no gradient"):
        check_loss_output(loss, vidrl.LossOutput(torch.tensor(1.0)))
    with pytest.raises(vidrl.ComponentError, match=r"loss of shape \[2\]; expected a scalar"):
        check_loss_output(loss, vidrl.LossOutput(torch.ones(2, requires_grad=True)))
    aug = session.create("augmenter", "difficulty_aug")
    where = r"augmenter 'difficulty_aug' \(plugin 'difficulty_aug'\)"
    with pytest.raises(vidrl.ComponentError, match=where + " replaced prompt 3; valid indices are 0..2"):
        check_augmented(aug, {3: None}, 3)
    with pytest.raises(vidrl.ComponentError, match="returned str for prompt 0"):
        check_augmented(aug, {0: "x"}, 3)
    grpo = session.create("advantage", "grpo")
    inf = vidrl.Advantages(torch.tensor([0.0, float("inf")]), torch.zeros(1, dtype=torch.bool), torch.ones(1))
    with pytest.raises(vidrl.ComponentError, match="non-finite advantages"):
        check_advantages(grpo, inf, 2, 3, 1)


def _step(setup, session, estimator="grpo", loss="no_old", iterations=1):
    """One RL step (2 prompts × 3 roll-outs) with ``estimator`` and ``loss``; returns (metrics,
    what a listener received through on_rollouts_scored)."""
    from transformers import AutoModelForImageTextToText

    path, processor, batch, samples = setup
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    learner = vidrl.Learner(model, torch.optim.SGD(model.parameters(), lr=0.1), None,
                            vidrl.HFGenerate().attach(model), eos)  # fmt: skip
    algo = Algorithm(session.create("advantage", estimator), session.create("loss", loss),
                     [("format", 1.0, session.create("reward", "format"))])  # fmt: skip
    opts = StepOptions(group_size=3, micro_batch_size=3, num_iterations=iterations, max_grad_norm=0.0,
                       sampling=Sampling(max_new_tokens=5))  # fmt: skip
    seen = []

    class Listener:
        @vidrl.hookimpl
        def on_rollouts_scored(self, batch, state):
            seen.append((batch, state))

    with session.subscribed(Listener(), name="listener"):
        metrics, _ = rl_step(learner, algo, tok, batch, samples, opts, hook=session.hook, state="state")
    return metrics, seen


def test_a_loss_without_the_need_gets_no_old_logprobs(video_prompts, session, monkeypatch):
    import vidrl.engine.step as step

    forwards, real = [], step.logprobs
    monkeypatch.setattr(step, "logprobs", lambda *a: forwards.append(a) or real(*a))
    NoOldLogprobs.seen.clear()
    _step(video_prompts, session)
    assert NoOldLogprobs.seen and all(old is None and ref is None for old, ref in NoOldLogprobs.seen)
    assert forwards == []  # no old (nor reference) log-prob forward ran
    _step(video_prompts, session, loss="ppo_clip")  # declares OLD_LOGPROBS: from the update (1 iteration)
    assert forwards == []
    _step(video_prompts, session, loss="ppo_clip", iterations=2)  # one forward, no reference
    assert len(forwards) == 1


def test_the_engine_names_a_broken_estimator_not_the_loss_that_would_have_failed(video_prompts, session):
    with pytest.raises(vidrl.ComponentError, match=r"advantage 'wrong_shape' \(plugin 'mine'\)"):
        _step(video_prompts, session, estimator="wrong_shape", loss="ppo_clip")
    with pytest.raises(vidrl.ComponentError, match=r"loss 'bare_tensor' \(plugin 'mine'\)"):
        _step(video_prompts, session, loss="bare_tensor")


def test_listeners_receive_a_frozen_rollout_batch(video_prompts, session):
    _, seen = _step(video_prompts, session)
    ((batch, state),) = seen
    assert isinstance(batch, vidrl.RolloutBatch) and state == "state"
    b = 6
    assert len(batch.texts) == len(batch.samples) == b and batch.group_size == 3
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1] and batch.scores.total.shape == (b,)
    assert batch.response_ids.shape == batch.response_mask.shape and batch.truncated.shape == (b,)
    eos = video_prompts[1].tokenizer.convert_tokens_to_ids("<|im_end|>")
    ended = ((batch.response_ids == eos) & batch.response_mask.bool()).any(1)
    assert torch.equal(batch.truncated, ~ended)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.texts = ()
    with pytest.warns(DeprecationWarning, match="use batch.texts"):
        assert batch["texts"] == batch.texts
    # the listener is gone after the block
    assert "listener" not in session.plugins and not session.pm.has_plugin("listener")


def test_a_listener_may_not_register_components(session):
    class Registers:
        @vidrl.hookimpl
        def register_rewards(self, register):
            pass

    with pytest.raises(vidrl.PluginError, match="listeners receive event hooks only"):
        with session.subscribed(Registers(), name="registers"):
            pass
    assert not session.pm.has_plugin("registers")


def test_the_typed_stash():
    s = vidrl.Sample("a", "q?", "2", task_type="numeric")
    assert s.extra(vidrl.ToolResults) is None
    t = s.with_extra(vidrl.ToolResults(calls=2, succeeded=1)).with_extra(vidrl.Augmentation("x"))
    assert t.extra(vidrl.ToolResults) == vidrl.ToolResults(2, 1) and t.extra(vidrl.Augmentation).by == "x"
    assert s.extras == {}  # the original is untouched
    assert t.with_extra(vidrl.ToolResults(3, 3)).extra(vidrl.ToolResults).calls == 3  # replaced, by type
    with pytest.warns(DeprecationWarning, match="sample.extra"):
        assert vidrl.TOOL_RESULTS == "tool_results"


def test_a_per_token_estimator_meets_a_sequence_level_loss_with_a_clear_error(session):
    from vidrl.engine.checks import check_pairing

    per_token = vidrl.Advantages(torch.zeros(4, 3), torch.zeros(2, dtype=torch.bool), torch.ones(2))
    grpo, reg = session.create("advantage", "grpo"), session.create("loss", "reg_grpo")
    with pytest.raises(vidrl.ComponentError, match=r"takes one advantage per roll-out \[B\]"):
        check_pairing(grpo, reg, per_token)
    check_pairing(grpo, session.create("loss", "ppo_clip"), per_token)  # ppo_clip takes [B, T]
    check_pairing(grpo, reg, vidrl.Advantages(torch.zeros(4), per_token.zero_std, per_token.group_weights))


def test_a_listener_that_fails_to_subscribe_leaves_nothing_behind(session):
    class Typo:
        @vidrl.hookimpl
        def on_rollout_scored(self, batch, state):  # not a hook
            pass

    for _ in range(2):  # the second try must fail the same way, not with "already registered"
        with pytest.raises(vidrl.PluginError, match="unknown hook 'on_rollout_scored'"):
            with session.subscribed(Typo(), name="typo"):
                pass
    with pytest.raises(vidrl.PluginError, match="that name is taken"):
        with session.subscribed(Typo(), name="mine"):
            pass
    assert "mine" in session.plugins and session.pm.has_plugin("mine")  # the real plugin is untouched


def test_the_owner_is_per_session_not_per_class():
    class A:
        @vidrl.hookimpl
        def register_advantage_estimators(self, register):
            register(WrongShape)

    one, two = vt_session(A(), "alpha"), vt_session(A(), "beta")
    assert vidrl.engine.checks.label(one.create("advantage", "wrong_shape")).endswith("(plugin 'alpha')")
    assert vidrl.engine.checks.label(two.create("advantage", "wrong_shape")).endswith("(plugin 'beta')")
    assert vidrl.engine.checks.label(WrongShape()).endswith("(not registered)")


def vt_session(plugin, name):
    s = vidrl.Session(enable=[name])
    s.add_plugin(plugin, name)
    return s.load()


def test_legacy_augment_metadata_becomes_the_stash_and_stays_readable():
    from vidrl.engine.augment import _marked

    old = vidrl.Augmented(vidrl.Sample("s", "q", "a", metadata={"augment": "hint"}), None)
    marked = _marked(old, "old_style")
    assert marked.sample.extra(vidrl.Augmentation) == vidrl.Augmentation("old_style", {"value": "hint"})
    assert marked.sample.metadata["augment"] == {"value": "hint"}  # deprecated key, still written
    new = vidrl.Augmented(vidrl.Sample("s", "q", "a").with_extra(vidrl.Augmentation("x", {"k": 1})), None)
    assert _marked(new, "x").sample.metadata["augment"] == {"k": 1}


def test_a_loss_reading_old_logprobs_it_did_not_declare_is_told_why_they_are_none(session):
    from vidrl.engine.checks import call_loss

    class Undeclared(vidrl.PolicyLoss):
        name = "undeclared"

        def __call__(self, inputs):
            ratio = (inputs.logprobs - inputs.old_logprobs).exp()
            return vidrl.LossOutput(-(ratio * inputs.mask).sum())

    inputs = vt.loss_inputs(old=False, ref=False)
    with pytest.raises(
        vidrl.ComponentError, match="old_logprobs and ref_logprobs are None: a loss gets them"
    ):
        call_loss(Undeclared(), inputs)
    assert call_loss(Undeclared(), vt.loss_inputs()).loss.requires_grad  # given them, it works
