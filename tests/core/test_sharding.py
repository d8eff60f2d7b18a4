"""What FSDP2 refuses before sharding anything, and what ``gathered`` does to a model that is
not sharded. Sharded training itself runs in two processes: tests/integration/test_distributed.py."""

from types import SimpleNamespace

import pytest
import torch

from vidrl.errors import ConfigError
from vidrl.models.sharding import Fsdp2, gathered


def _accelerator(activation_checkpointing=False):
    plugin = SimpleNamespace(activation_checkpointing=activation_checkpointing)
    return SimpleNamespace(is_fsdp2=True, state=SimpleNamespace(fsdp_plugin=plugin))


def test_lora_with_fsdp2_is_refused_naming_the_alternative():
    model = torch.nn.Linear(3, 3)
    model.register_parameter("lora_A", torch.nn.Parameter(torch.zeros(1, 3)))
    with pytest.raises(ConfigError, match=r"model.lora with FSDP2 is not supported yet.*ddp.yaml"):
        Fsdp2(_accelerator()).prepare(model)


def test_fsdp_activation_checkpointing_is_refused_for_vidrls_own():
    with pytest.raises(ConfigError, match="use model.gradient_checkpointing: true"):
        Fsdp2(_accelerator(activation_checkpointing=True)).prepare(torch.nn.Linear(3, 3))


def test_gathered_leaves_a_model_that_is_not_sharded_alone():
    model = torch.nn.Linear(3, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with gathered(model), gathered(model):  # re-entrant
        out = model(torch.ones(1, 3))
    assert out.shape == (1, 3) and not hasattr(model, "_vidrl_gathered")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
