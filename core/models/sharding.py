"""How the policy and the reference are spread over data-parallel processes: whole on every
process (one process, or DDP), or sharded with FSDP2 through accelerate.

Under FSDP2 each process holds 1/N of every parameter, gradient and AdamW state (``fully_shard``
of the units accelerate's ``fsdp2_prepare_model`` picks from the accelerate config, ``accelerate
launch --config_file examples/accelerate/fsdp2.yaml``: each decoder layer and vision block, in
recent accelerate the embeddings and the final norm, and the root; under bf16-mixed vidrl makes
the LM head a float32 unit first). accelerate shards only on accelerators; on CPU
processes (gloo), which is how the tests check sharded training against one process, vidrl runs
the same preparation itself when the environment asks for FSDP2 (``ACCELERATE_USE_FSDP=true``,
``FSDP_VERSION=2``, as ``accelerate launch`` sets them).

A sharded model is used only through its forward: outside it, parameters are shards. So the
memory-lean log-probs project onto the vocabulary inside the LM head's forward
(``vidrl.engine.rollout.sequence_logprobs``), checkpoints gather the full state dict (written by
the main process, the same ``model/`` as without sharding) and write the optimizer state as
shards (``optimizer/``, torch.distributed.checkpoint), and ``generate`` and the main process's
evaluation run on gathered parameters (``gathered``).
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from vidrl.errors import ConfigError
from vidrl.models.policy import autocast_forward

#: the marker a checkpoint's ``state.pt`` holds instead of the optimizer state written as shards
SHARDED = "sharded: optimizer/"


class Whole:
    """No sharding: every process holds the whole model (accelerate wraps it for DDP)."""

    name = "none"

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator

    def check(self, model_config: Any) -> None:
        """Refuse at start a ``ModelConfig`` this sharding cannot train (nothing, here)."""

    def prepare(self, model: Any) -> Any:
        """The trained model, ready for this process (DDP-wrapped when data-parallel; under
        bf16-mixed its forward runs under accelerate's autocast)."""
        return self.accelerator.prepare_model(model)

    def prepare_frozen(self, model: Any) -> Any:
        """A frozen model (the reference) on this process's device, with the policy's numerics
        (float32 weights under the same autocast: the KL is 0 before the first update)."""
        if self.accelerator.mixed_precision != "no":
            autocast_forward(model, self.accelerator.autocast)
        return model.to(self.accelerator.device)

    def model_state(self, model: Any) -> dict[str, torch.Tensor] | None:
        """The full state dict to save (None: the model's own, read where it is saved)."""
        return None

    def save_optimizer(self, directory: Path, model: Any, optimizer: Any) -> Any:
        """What ``state.pt`` holds for the optimizer (written by the main process)."""
        return optimizer.state_dict()

    def load_optimizer(self, saved: Any, checkpoint: Path, model: Any, optimizer: Any) -> None:
        if saved == SHARDED:
            raise ConfigError([f"{checkpoint} was written under FSDP2: resume it with the FSDP2 config"])
        optimizer.load_state_dict(saved)


class Fsdp2(Whole):
    """FSDP2: parameters, gradients and optimizer state sharded over the processes. Under
    bf16-mixed, FSDP2's mixed-precision policy instead of autocast: float32 shards, parameters
    gathered in bf16, gradients reduced in float32; the LM head (with the embeddings when they are
    tied) stays in float32 and returns float32, so log-probs are float32 as without sharding."""

    name = "fsdp2"

    def prepare(self, model: Any) -> Any:
        from accelerate.utils import fsdp2_prepare_model

        preparer = self._preparer()
        if self.accelerator.mixed_precision == "bf16":
            _float32_head(model, preparer.state.fsdp_plugin)
        model = fsdp2_prepare_model(preparer, model)
        _init_root(model)
        return model

    def prepare_frozen(self, model: Any) -> Any:
        return self.prepare(model)  # the same policy as the trained model: the same numerics

    def check(self, model_config: Any) -> None:
        """Refuse at start what vidrl's FSDP2 does not do (rather than ignore it)."""
        try:
            from accelerate.utils import fsdp2_prepare_model  # noqa: F401
            from torch.distributed.fsdp import FSDPModule  # noqa: F401
        except ImportError as e:
            raise ConfigError([f"FSDP2 needs a newer accelerate and torch (tested: accelerate 1.15, "
                               f"torch 2.11 and 2.14): {e}"]) from e  # fmt: skip
        plugin, problems = self._plugin(), []
        if model_config.lora is not None:
            problems.append("model.lora with FSDP2 is not supported yet: a LoRA model keeps a frozen "
                            "base per process anyway; train it data-parallel (ddp.yaml)")  # fmt: skip
        if plugin.activation_checkpointing:  # only accelerate.prepare applies it
            problems.append("fsdp_activation_checkpointing is not applied by vidrl: set it false and "
                            "use model.gradient_checkpointing: true")  # fmt: skip
        if plugin.cpu_ram_efficient_loading or type(plugin.cpu_offload).__name__ == "CPUOffloadPolicy":
            problems.append("fsdp_cpu_ram_efficient_loading and fsdp_offload_params are not supported "
                            "by vidrl yet: set them false")  # fmt: skip
        if problems:
            raise ConfigError(problems)

    def _plugin(self) -> Any:
        """accelerate's FSDP plugin: the accelerator's, or (CPU processes, which accelerate does not
        shard) one read from the environment ``accelerate launch`` sets."""
        from accelerate.utils import FullyShardedDataParallelPlugin

        acc = self.accelerator
        if getattr(acc, "is_fsdp2", False):
            return acc.state.fsdp_plugin
        if not hasattr(self, "_own_plugin"):
            self._own_plugin = FullyShardedDataParallelPlugin()
        return self._own_plugin

    def _preparer(self) -> Any:
        """What ``fsdp2_prepare_model`` reads: the accelerator itself when accelerate runs FSDP2,
        else the same settings around ``_plugin()``. Its mixed-precision policy is vidrl's (see
        the class)."""
        from torch.distributed.fsdp import MixedPrecisionPolicy

        acc = self.accelerator
        preparer = acc if getattr(acc, "is_fsdp2", False) else types.SimpleNamespace(
            state=types.SimpleNamespace(fsdp_plugin=self._plugin()), torch_device_mesh=None,
            parallelism_config=None, mixed_precision=acc.mixed_precision, device=acc.device,
            is_main_process=acc.is_main_process,
        )  # fmt: skip
        bf16 = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        preparer.state.fsdp_plugin.mixed_precision_policy = bf16 if acc.mixed_precision == "bf16" else None
        return preparer

    def model_state(self, model: Any) -> dict[str, torch.Tensor] | None:
        """Gathered on every process (a collective), kept on the main one, on the CPU."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)

    def save_optimizer(self, directory: Path, model: Any, optimizer: Any) -> Any:
        """Every process writes its shard of the optimizer state into ``directory/optimizer``."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
        dcp.save(state, checkpoint_id=directory / "optimizer")
        return SHARDED

    def load_optimizer(self, saved: Any, checkpoint: Path, model: Any, optimizer: Any) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

        if saved != SHARDED:
            raise ConfigError(
                [f"{checkpoint} was written without FSDP2: resume it with the sharding it was written with"]
            )
        state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
        dcp.load(state, checkpoint_id=checkpoint / "optimizer")
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


@contextmanager
def gathered(model: Any) -> Iterator[None]:
    """Within the block, a model sharded by FSDP2 is whole on every process, and stays whole
    through its forwards (which then need no collective: one process may run them alone, and
    ``generate`` gathers once, not once per token); sharded again after. Every process must enter
    the block. Re-entrant; nothing to do for a model that is not sharded."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2: nothing can be sharded by it
        yield
        return

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units or getattr(model, "_vidrl_gathered", False):
        yield
        return
    _init_root(model)
    groups = [g for m in units for g in m._get_fsdp_state()._fsdp_param_groups]
    saved = [g.post_forward_mesh_info for g in groups]  # the setting has no getter: put it back as it was
    try:
        model._vidrl_gathered = True
        model.set_reshard_after_forward(False)  # recursive
        for unit in units:  # unshard and reshard are not
            unit.unshard()
        yield
    finally:
        model._vidrl_gathered = False
        for unit in units:
            unit.reshard()
        for group, info in zip(groups, saved, strict=True):
            group.post_forward_mesh_info = info


def _float32_head(model: Any, plugin: Any) -> None:
    """The LM head (and the input embeddings, when tied to it) as an FSDP2 unit that keeps
    float32 parameters and returns float32, before the rest is sharded under the bf16 policy
    (accelerate leaves units that exist alone)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    group = [embed, head] if head.weight is embed.weight else [head]
    float32 = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
    fully_shard(group, reshard_after_forward=False, offload_policy=plugin.cpu_offload, mp_policy=float32)


def _init_root(model: Any) -> None:
    """FSDP2 makes the first unit to run a forward the root, lazily. ``generate`` may run the
    vision tower's blocks before the model (transformers >= 5.2x encodes media first), and
    ``gathered`` changes settings the root's set-up would decide on one rank only: so the whole
    model is made the root now, on every rank (a private call: FSDP2 has no public one)."""
    model._get_fsdp_state()._lazy_init()


def sharding_for(accelerator: Any) -> Whole:
    """``Fsdp2`` when FSDP2 is asked for (``fsdp_version``), else ``Whole``. Any other FSDP
    version, and DeepSpeed, are refused earlier (``vidrl.engine.context.check_distributed``)."""
    return Fsdp2(accelerator) if fsdp_version(accelerator) == 2 else Whole(accelerator)


def fsdp_version(accelerator: Any) -> int | None:
    """The FSDP version asked for, None when none is: accelerate's own when it runs FSDP, else
    the environment ``accelerate launch`` sets for several CPU processes, which accelerate does
    not shard (one CPU process has nothing to shard over)."""
    kind = str(accelerator.distributed_type)
    if kind.endswith("FSDP"):
        return int(accelerator.state.fsdp_plugin.fsdp_version)
    if kind.endswith("MULTI_CPU") and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return int(os.environ.get("FSDP_VERSION", "1"))
    return None
