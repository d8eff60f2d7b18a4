"""What FSDP2 refuses before sharding anything, and what ``gathered`` does to a model that is
not sharded. Sharded training itself runs in two processes: tests/integration/test_distributed.py."""

from types import SimpleNamespace

import pytest
import torch

from vidrl.errors import ConfigError
from vidrl.models.sharding import Fsdp2, gathered


def _accelerator(**plugin):
    settings = {"activation_checkpointing": False, "cpu_ram_efficient_loading": False, "cpu_offload": None}
    return SimpleNamespace(
        is_fsdp2=True, state=SimpleNamespace(fsdp_plugin=SimpleNamespace(**{**settings, **plugin}))
    )


def test_lora_with_fsdp2_is_refused_at_start_naming_the_alternative():
    from vidrl.config import LoraConfig, ModelConfig

    Fsdp2(_accelerator()).check(ModelConfig())
    with pytest.raises(ConfigError, match=r"model.lora with FSDP2 is not supported yet.*ddp.yaml"):
        Fsdp2(_accelerator()).check(ModelConfig(lora=LoraConfig()))


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"activation_checkpointing": True}, "use model.gradient_checkpointing: true"),
     ({"cpu_ram_efficient_loading": True}, "fsdp_cpu_ram_efficient_loading and fsdp_offload_params")],
)  # fmt: skip
def test_accelerate_fsdp_settings_vidrl_does_not_apply_are_refused(setting, message):
    from vidrl.config import ModelConfig

    with pytest.raises(ConfigError, match=message):
        Fsdp2(_accelerator(**setting)).check(ModelConfig())


def test_gathered_leaves_a_model_that_is_not_sharded_alone():
    model = torch.nn.Linear(3, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with gathered(model), gathered(model):  # re-entrant
        out = model(torch.ones(1, 3))
    assert out.shape == (1, 3) and not hasattr(model, "_vidrl_gathered")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
