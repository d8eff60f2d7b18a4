"""vidrl.testing's conformance suites: every built-in component passes its kind's suite, and each
suite fails on a component that breaks one of its rules (a suite that cannot fail checks nothing)."""

import re

import pytest
import torch

import vidrl
import vidrl.testing as vt

SESSION = vidrl.Session().load()
#: options for components that have required ones
OPTIONS = {
    ("judge", "causal_lm"): {"model": "tiny", "max_new_tokens": 2, "batch_size": 2},
    ("reward", "overlong"): {"max_length": 8, "buffer": 4},
    # no server listens there: every request fails at once and the sample is left unscored (None)
    ("reward", "llm_judge"): {
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "retries": 0,
        "timeout": 2,
        "on_error": "none",
    },
}
BUILT_IN = [(kind, name) for kind in vt.SUITES for name in SESSION.registry(kind).names()]


def test_every_kind_with_behaviour_has_a_suite():
    assert set(vt.SUITES) == set(vidrl.KINDS) - {"kernel", "video_backend"}  # those have their own tests
    assert len(BUILT_IN) >= 20


@pytest.mark.parametrize(("kind", "name"), BUILT_IN)
def test_built_in_components_conform(kind, name):
    cls = SESSION.registry(kind).get(name)
    options = OPTIONS.get((kind, name))
    vt.check_component(SESSION, kind, name, None if options is None else cls.Config(**options))


class NaNOnTies(vidrl.AdvantageEstimator):
    name = "nan_on_ties"

    def __call__(self, rewards, group_ids):
        inverse, n = vidrl.ops.group_index(rewards.numel(), group_ids)
        mean, _, _, zero = vidrl.ops.group_stats(rewards.float(), inverse, n)
        adv = torch.where(zero[inverse], float("nan"), rewards - mean[inverse])  # 0 / 0 on ties
        return vidrl.Advantages(adv, zero, torch.ones(n))


class Centred(vidrl.AdvantageEstimator):
    """Correct but forgets the zero-std flags."""

    name = "no_flags"

    def __call__(self, rewards, group_ids):
        inverse, n = vidrl.ops.group_index(rewards.numel(), group_ids)
        mean, _, _, zero = vidrl.ops.group_stats(rewards.float(), inverse, n)
        adv = torch.where(zero[inverse], 0.0, rewards - mean[inverse])
        return vidrl.Advantages(adv, torch.zeros(n, dtype=torch.bool), torch.ones(n))


class GradOnPadding(vidrl.PolicyLoss):
    name = "grad_on_padding"

    def __call__(self, inputs):
        adv = inputs.advantages if inputs.advantages.dim() == 2 else inputs.advantages[:, None]
        return vidrl.LossOutput(-(adv * inputs.logprobs).mean())


class MeanOverMask(vidrl.PolicyLoss):
    """NaN on an all-masked micro-batch (0 / 0)."""

    name = "mean_over_mask"

    def __call__(self, inputs):
        adv = inputs.advantages if inputs.advantages.dim() == 2 else inputs.advantages[:, None]
        return vidrl.LossOutput(-(adv * inputs.logprobs * inputs.mask).sum() / inputs.mask.sum())


class ShortReward(vidrl.Reward):
    name = "short"

    def __call__(self, responses, samples):
        return [1.0 for r in responses if r]  # drops empty responses


class ForgetfulAugmenter(vidrl.Augmenter):
    name = "forgetful"

    def __init__(self, config=None):
        super().__init__(config)
        self.seen = 0

    def __call__(self, batch):
        return {}

    def observe(self, samples, group_means):
        self.seen += len(samples)

    def state_dict(self):
        return {"seen": self.seen}  # never restored: load_state_dict is the no-op default


class OutOfRange(ForgetfulAugmenter):
    name = "out_of_range"

    def __call__(self, batch):
        return {len(batch.samples): vidrl.Augmented(batch.samples[0], batch.clips[0])}


class SilentJudge(vidrl.Judge):
    name = "silent"

    def __call__(self, items):
        return [vidrl.Judgement(True, "", True) for _ in items[:-1]]


class RaisingTool(vidrl.Tool):
    name = "raising"
    parameters = {"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}

    def __call__(self, arguments, context):
        return vidrl.Observation(f"{context.duration / arguments['t']:.1f}")  # no video: duration None


class SloppyStage(vidrl.Stage):
    name = "sloppy"

    def check(self, config, session=None):
        return None if config.rewards else [3]

    def run(self, context):
        pass


class GroupMajor(vidrl.HFGenerate):
    """Right responses in the wrong order: sample k of every prompt, then sample k + 1, ..."""

    name = "group_major"

    def generate(self, request):
        ids = super().generate(request)
        g, p = request.group_size, request.num_prompts
        return ids.view(p, g, -1).transpose(0, 1).reshape(p * g, -1)


class NoPadding(vidrl.HFGenerate):
    """Keeps sampling past the stop token."""

    name = "no_padding"

    def generate(self, request):
        ids = super().generate(request)
        ids[:, -1] = request.stop_ids[0]
        ids[:, 0] = request.stop_ids[0]
        return ids


class Mutants:
    @vidrl.hookimpl
    def register_advantage_estimators(self, register):
        register(NaNOnTies)
        register(Centred)

    @vidrl.hookimpl
    def register_policy_losses(self, register):
        register(GradOnPadding)
        register(MeanOverMask)

    @vidrl.hookimpl
    def register_rewards(self, register):
        register(ShortReward)

    @vidrl.hookimpl
    def register_augmenters(self, register):
        register(ForgetfulAugmenter)
        register(OutOfRange)

    @vidrl.hookimpl
    def register_judges(self, register):
        register(SilentJudge)

    @vidrl.hookimpl
    def register_tools(self, register):
        register(RaisingTool)

    @vidrl.hookimpl
    def register_stages(self, register):
        register(SloppyStage)

    @vidrl.hookimpl
    def register_rollout_backends(self, register):
        register(GroupMajor)
        register(NoPadding)


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("advantage", "nan_on_ties", "non-finite advantages"),
        ("advantage", "no_flags", "zero_std must flag exactly the equal groups"),
        ("loss", "grad_on_padding", "padding tokens must get no gradient"),
        ("loss", "mean_over_mask", "all-masked micro-batch must give a finite loss"),
        ("reward", "short", "returned 3 scores for 4 responses"),
        ("augmenter", "forgetful", "load_state_dict(state_dict()) must restore the same state"),
        ("augmenter", "out_of_range", "replaced prompt 3; valid indices are 0..2"),
        ("judge", "silent", "one Judgement per item"),
        ("tool", "raising", "raised TypeError"),
        ("stage", "sloppy", "check must return a list of str, got [3]"),
        ("rollout_backend", "group_major", "a prompt's G responses must be equal"),
        ("rollout_backend", "no_padding", "only pad_id may follow a row's first stop id"),
    ],
)
def test_each_suite_catches_a_broken_component(kind, name, expected):
    session = vt.tiny_session(Mutants(), only=True)
    with pytest.raises((AssertionError, vidrl.ComponentError), match=re.escape(expected)) as e:
        vt.check_component(session, kind, name)
    assert f"'{name}' (plugin 'test_plugin_0')" in str(e.value)


def test_builders_make_what_components_receive():
    inputs = vt.loss_inputs((3, 1, 2), t=5, per_token=True, ref=False)
    assert inputs.logprobs.shape == (6, 5) and inputs.logprobs.requires_grad and inputs.ref_logprobs is None
    assert inputs.group_ids.tolist() == [0, 0, 0, 1, 2, 2] and inputs.advantages.shape == (6, 5)
    assert inputs.step_tokens == float(inputs.mask.sum()) and (inputs.mask.sum(1) >= 1).all()
    assert float(vt.loss_inputs(masked=True).mask.sum()) == 0
    batch = vt.augment_input((0.0, 1.0), g=3)
    assert len(batch.samples) == len(batch.clips) == 2 and batch.rewards == [[0.0] * 3, [1.0] * 3]
    texts, rewards = batch.regenerate(batch.samples[:1], batch.clips[:1])
    assert len(texts) == 1 and len(texts[0]) == 3 and rewards == [[0.5] * 3]
    assert vt.tool_context().sample.task_type == "multiple_choice"
    assert vt.sample("temporal_grounding").span == (2.0, 4.5)
