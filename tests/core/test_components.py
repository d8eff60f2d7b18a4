"""The shape every component shares: name, frozen Config, declared needs."""

from dataclasses import dataclass

import pytest
import torch

import vidrl
from vidrl.plugin.components import KINDS, check_component_class


class KL(vidrl.PolicyLoss):
    """A loss whose needs depend on its options, as a KL penalty's do."""

    name = "kl_only"
    requires = frozenset({vidrl.Need.OLD_LOGPROBS})

    @dataclass(frozen=True)
    class Config:
        beta: float = 0.0

    def needs(self):
        extra = {vidrl.Need.REFERENCE_MODEL} if self.config.beta > 0 else set()
        return self.requires | extra

    def __call__(self, inputs):
        return vidrl.LossOutput(inputs.logprobs.sum())


def test_default_config_and_needs():
    assert KL().config == KL.Config() and KL().needs() == {vidrl.Need.OLD_LOGPROBS}
    assert KL(KL.Config(beta=0.1)).needs() == {vidrl.Need.OLD_LOGPROBS, vidrl.Need.REFERENCE_MODEL}


def test_wrong_config_type_is_refused():
    with pytest.raises(TypeError, match="KL takes a Config, got dict"):
        KL({"beta": 1.0})


def test_check_component_class_accepts_a_valid_class():
    assert check_component_class(KINDS["loss"], KL) is None
    assert "expected a subclass of vidrl.Reward" in check_component_class(KINDS["reward"], KL)


def test_every_kind_has_a_hook_and_an_abstract_base():
    for kind in KINDS.values():
        assert kind.hook.startswith("register_")
        assert issubclass(kind.base, vidrl.Component) and kind.base.__abstractmethods__


def test_loss_inputs_and_output_carry_tensors():
    lp = torch.zeros(2, 3, requires_grad=True)
    inputs = vidrl.LossInputs(
        lp, torch.ones(2), torch.ones(2, 3), torch.tensor([0, 0]), step_tokens=6, step_sequences=2
    )
    out = KL()(inputs)
    out.loss.backward()
    assert torch.equal(lp.grad, torch.ones(2, 3)) and out.metrics == {}


def test_sample_rejects_unknown_task_type():
    with pytest.raises(ValueError, match="unknown task_type 'mcq'; valid: multiple_choice, numeric"):
        vidrl.Sample(id="x", question="q", answer="a", task_type="mcq")
