"""Run-context helpers: trackers, the flattened config they receive, freezing parameters."""

import pytest
import torch

from vidrl.engine.report import check_trackers, flat_config
from vidrl.errors import ConfigError
from vidrl.models.policy import freeze


def test_trackers_are_checked_and_the_config_flattened():
    with pytest.raises(ConfigError, match="unknown tracker 'tensorbord'.*did you mean 'tensorboard'"):
        check_trackers(("tensorbord",))
    assert check_trackers(()) == []
    flat = flat_config({"a": {"b": 1, "c": [{"d": None}, 2.5]}, "e": "x"})
    assert flat == {"a.b": 1, "a.c.0.d": "None", "a.c.1": 2.5, "e": "x"}


def test_freeze_by_name_part():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert freeze(model, ("0.",)) == 2
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    with pytest.raises(ConfigError, match="'visual' matches no parameter name"):
        freeze(model, ("visual",))


@pytest.mark.parametrize("kind", ["DistributedType.DEEPSPEED", "MEGATRON_LM", "XLA"])
def test_an_accelerate_setting_vidrl_cannot_honour_is_refused(kind):
    from vidrl.engine.context import check_distributed

    with pytest.raises(
        ConfigError, match=f"configured for {kind.split('.')[-1]}, which vidrl does not support"
    ):
        check_distributed(kind)


@pytest.mark.parametrize("kind", ["DistributedType.FSDP", "MULTI_CPU"])  # MULTI_CPU: asked for by environment
def test_fsdp_other_than_version_2_is_refused(kind):
    from vidrl.engine.context import check_distributed

    with pytest.raises(
        ConfigError, match="FSDP version 1; vidrl supports FSDP2 only: set fsdp_config.fsdp_version"
    ):
        check_distributed(kind, fsdp=1)


@pytest.mark.parametrize(
    ("kind", "fsdp"), [("DistributedType.NO", None), ("MULTI_GPU", None), ("MULTI_CPU", None), ("FSDP", 2),
                       ("MULTI_CPU", 2)]
)  # fmt: skip
def test_single_process_ddp_and_fsdp2_are_accepted(kind, fsdp):
    from vidrl.engine.context import check_distributed

    check_distributed(kind, fsdp)


def test_the_fsdp_version_asked_for(monkeypatch):
    """accelerate's own plugin when it runs FSDP; on several CPU processes the variables
    `accelerate launch` sets; none without them."""
    from types import SimpleNamespace

    from vidrl.models.sharding import Fsdp2, Whole, fsdp_version, sharding_for

    gpu = SimpleNamespace(distributed_type="DistributedType.FSDP", state=SimpleNamespace(
        fsdp_plugin=SimpleNamespace(fsdp_version=2)))  # fmt: skip
    cpu = SimpleNamespace(distributed_type="DistributedType.MULTI_CPU", state=SimpleNamespace())
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert fsdp_version(gpu) == 2 and type(sharding_for(gpu)) is Fsdp2
    assert fsdp_version(cpu) is None and type(sharding_for(cpu)) is Whole
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert fsdp_version(cpu) == 1  # accelerate's default version
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert fsdp_version(cpu) == 2 and type(sharding_for(cpu)) is Fsdp2
    one = SimpleNamespace(distributed_type="DistributedType.NO", state=SimpleNamespace())
    assert fsdp_version(one) is None  # one CPU process: nothing to shard over
