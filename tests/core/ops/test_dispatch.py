"""Dispatch: a registered kernel serves its device; VIDRL_KERNELS=off forces the reference."""

import pytest
import torch

import vidrl
from vidrl import ops
from vidrl.ops import dispatch


@pytest.fixture(autouse=True)
def _restore_table():
    saved = dict(dispatch._active)
    yield
    dispatch.install(saved)


class CpuSpy(vidrl.Kernel):
    """Serves group_advantages on CPU and records the call."""

    name = "group_advantages"
    devices = frozenset({"cpu"})
    calls = 0

    def __call__(self, rewards, group_ids=None, group_size=None, **kwargs):
        type(self).calls += 1
        return ops.advantages.group_advantages(rewards, group_ids, group_size, **kwargs)


class Spies:
    @vidrl.hookimpl
    def register_kernels(self, register):
        register(CpuSpy)


def _session(**kw):
    s = vidrl.Session(disable=["kernels"], **kw)
    s.add_plugin(Spies(), "spies")
    return s.load()


def test_registered_kernel_serves_its_device(monkeypatch):
    monkeypatch.delenv("VIDRL_KERNELS", raising=False)
    _session()
    CpuSpy.calls = 0
    ops.group_advantages(torch.tensor([0.0, 1.0]), group_size=2)
    assert CpuSpy.calls == 1
    assert dispatch.describe()["group_advantages"].startswith("CpuSpy on cpu (available)")


def test_env_off_forces_the_reference(monkeypatch):
    _session()
    monkeypatch.setenv("VIDRL_KERNELS", "off")
    CpuSpy.calls = 0
    ops.group_advantages(torch.tensor([0.0, 1.0]), group_size=2)
    assert CpuSpy.calls == 0
    assert dispatch.describe()["group_advantages"].startswith("reference (VIDRL_KERNELS=off")


def test_bad_env_value_lists_choices(monkeypatch):
    _session()
    monkeypatch.setenv("VIDRL_KERNELS", "maybe")
    with pytest.raises(vidrl.VidrlError, match="VIDRL_KERNELS='maybe' is not valid; valid choices: on, off"):
        ops.group_advantages(torch.tensor([0.0, 1.0]), group_size=2)


def test_a_new_session_replaces_the_table():
    _session()
    vidrl.Session(disable=["kernels"]).load()
    assert dispatch.describe()["group_advantages"] == "reference (no kernel registered)"


def test_kernel_must_be_named_after_a_primitive():
    class Odd(CpuSpy):
        name = "softmax"

    class P:
        @vidrl.hookimpl
        def register_kernels(self, register):
            register(Odd)

    s = vidrl.Session(disable=["kernels"], strict=True)
    s.add_plugin(P(), "odd")
    with pytest.raises(
        vidrl.PluginError, match="'softmax' is not one of token_logprobs, linear_token_logprobs"
    ):
        s.load()


def test_cuda_kernels_are_not_used_for_cpu_tensors():
    vidrl.Session().load()  # the built-in Triton kernels: devices {"cuda"}
    assert dispatch.lookup("token_logprobs", torch.device("cpu")) is None
