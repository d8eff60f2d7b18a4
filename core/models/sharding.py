"""How the policy and the reference are spread over data-parallel processes: whole on every
process (one process, or DDP), or sharded with FSDP2 through accelerate.

Under FSDP2 each process holds 1/N of every parameter, gradient and AdamW state (``fully_shard``
of each decoder layer, the embeddings, the final norm with the LM head, and the root, exactly as
accelerate's ``fsdp2_prepare_model`` does it, from the accelerate config: ``accelerate launch
--config_file examples/accelerate/fsdp2.yaml``). accelerate shards only on accelerators; on CPU
processes (gloo), which is how the tests check sharded training against one process, vidrl runs
the same preparation itself when the environment asks for FSDP2 (``ACCELERATE_USE_FSDP=true``,
``FSDP_VERSION=2``, as ``accelerate launch`` sets them).

A sharded model is used only through its forward: outside it, parameters are shards. So the
memory-lean log-probs project onto the vocabulary inside the LM head's forward
(``vidrl.engine.rollout.sequence_logprobs``), checkpoints gather the full state dict (written by
the main process, the same ``model/`` as without sharding) and write the optimizer state as
shards (``optimizer/``, torch.distributed.checkpoint: any process count can resume it), and the
main process's evaluation runs on gathered parameters (``gathered``).
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

#: the marker a checkpoint's ``state.pt`` holds instead of the optimizer state written as shards
SHARDED = "sharded: optimizer/"


class Whole:
    """No sharding: every process holds the whole model (accelerate wraps it for DDP)."""

    name = "none"

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator

    def prepare(self, model: Any) -> Any:
        """The trained model, ready for this process (DDP-wrapped when data-parallel)."""
        return self.accelerator.prepare_model(model)

    def prepare_frozen(self, model: Any) -> Any:
        """A frozen model (the reference), on this process's device."""
        return model.to(self.accelerator.device)

    def model_state(self, model: Any) -> dict[str, torch.Tensor] | None:
        """The full state dict to save (None: the model's own, read where it is saved)."""
        return None

    def save_optimizer(self, directory: Path, model: Any, optimizer: Any) -> Any:
        """What ``state.pt`` holds for the optimizer (written by the main process)."""
        return optimizer.state_dict()

    def load_optimizer(self, saved: Any, checkpoint: Path, model: Any, optimizer: Any) -> None:
        optimizer.load_state_dict(saved)


class Fsdp2(Whole):
    """FSDP2: parameters, gradients and optimizer state sharded over the processes."""

    name = "fsdp2"

    def prepare(self, model: Any) -> Any:
        from accelerate.utils import fsdp2_prepare_model

        if any("lora_" in n for n, _ in model.named_parameters()):
            raise ConfigError([
                "model.lora with FSDP2 is not supported yet: a LoRA model keeps one frozen copy of the "
                "base per process anyway; train it data-parallel (examples/accelerate/ddp.yaml)"
            ])  # fmt: skip
        preparer = self._preparer()
        if preparer.state.fsdp_plugin.activation_checkpointing:  # only accelerate.prepare applies it
            raise ConfigError([
                "fsdp_activation_checkpointing in the accelerate config is not applied by vidrl: set it "
                "false and use model.gradient_checkpointing: true"
            ])  # fmt: skip
        model = fsdp2_prepare_model(preparer, model)
        _init_root(model)
        return model

    def prepare_frozen(self, model: Any) -> Any:
        return self.prepare(model)

    def _preparer(self) -> Any:
        """What ``fsdp2_prepare_model`` reads: the accelerator itself when accelerate runs FSDP2;
        on CPU processes, where it does not, the same settings read from the environment."""
        acc = self.accelerator
        if getattr(acc, "is_fsdp2", False):
            return acc
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()
        return types.SimpleNamespace(
            state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None, parallelism_config=None,
            mixed_precision=acc.mixed_precision, device=acc.device, is_main_process=acc.is_main_process,
        )  # fmt: skip

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
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units or getattr(model, "_vidrl_gathered", False):
        yield
        return
    _init_root(model)
    groups = [g for m in units for g in m._get_fsdp_state()._fsdp_param_groups]
    saved = [g.post_forward_mesh_info for g in groups]  # the setting has no getter: put it back as it was
    model.set_reshard_after_forward(False)  # recursive
    for unit in units:  # unshard and reshard are not
        unit.unshard()
    model._vidrl_gathered = True
    try:
        yield
    finally:
        model._vidrl_gathered = False
        for unit in units:
            unit.reshard()
        for group, info in zip(groups, saved, strict=True):
            group.post_forward_mesh_info = info


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
