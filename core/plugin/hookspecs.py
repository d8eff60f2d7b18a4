"""The whole hook surface of vidrl. Each docstring is the contract a plugin implements against.

Two families:

- **Registration hooks** fire once per session, at plugin loading, in hook-call order (pluggy's:
  last registered first, then ``tryfirst``/``trylast``). Each receives ``register``, a callable
  taking a component class (a subclass of the kind's base in ``vidrl``, with ``name`` and
  ``Config``); it returns nothing. Registering a name twice is an error naming both plugins.
- **Event hooks** fire from the engine at the seams of the RL step; every implementation is
  called (1:N) and none is ``firstresult`` or ``historic``.

An implementation may take any subset of a hook's arguments, by name. An exception raised by an
implementation is re-raised as ``vidrl.PluginError`` naming the plugin and its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from vidrl.types import RolloutBatch, TrainState

PROJECT = "vidrl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


@hookspec
def register_advantage_estimators(register: Register) -> None:
    """Register ``vidrl.AdvantageEstimator`` subclasses. Fires once, at loading."""


@hookspec
def register_policy_losses(register: Register) -> None:
    """Register ``vidrl.PolicyLoss`` subclasses. Fires once, at loading."""


@hookspec
def register_rewards(register: Register) -> None:
    """Register ``vidrl.Reward`` subclasses (verifiers and reward functions). Fires once, at loading."""


@hookspec
def register_augmenters(register: Register) -> None:
    """Register ``vidrl.Augmenter`` subclasses. Fires once, at loading."""


@hookspec
def register_tools(register: Register) -> None:
    """Register ``vidrl.Tool`` subclasses. Fires once, at loading."""


@hookspec
def register_kernels(register: Register) -> None:
    """Register ``vidrl.Kernel`` subclasses: accelerated versions of ``vidrl.ops`` primitives,
    each named after the primitive it implements. Fires once, at loading."""


@hookspec
def register_stages(register: Register) -> None:
    """Register ``vidrl.Stage`` subclasses (SFT, RL, DPO, loops of stages). Fires once, at loading."""


@hookspec
def register_judges(register: Register) -> None:
    """Register ``vidrl.Judge`` subclasses (LLM judges of reasoning/answer consistency). Fires
    once, at loading."""


@hookspec
def register_video_backends(register: Register) -> None:
    """Register ``vidrl.VideoBackend`` subclasses (file readers: decord, PyAV, ...). Fires once, at
    loading."""


@hookspec
def register_rollout_backends(register: Register) -> None:
    """Register ``vidrl.RolloutBackend`` subclasses (sampling engines: Hugging Face ``generate``,
    vLLM, SGLang, ...). Fires once, at loading."""


@hookspec
def on_rollouts_scored(batch: RolloutBatch, state: TrainState) -> None:
    """Fires in every process after the rewards of a step's roll-outs are computed (after the
    augment phase: the roll-outs the step trains on) and before advantages are.

    ``batch`` is a frozen ``vidrl.RolloutBatch`` (texts, samples, scores, group ids, response
    tokens, cut-off flags); ``state`` the ``vidrl.TrainState`` (``global_step`` counts the steps
    done before this one). Replay buffers, difficulty trackers and recorders update here (a loop
    stage subscribes a listener for one phase with ``Session.subscribed``). Return value ignored.
    """


@hookspec
def on_step_end(state: TrainState, metrics: dict[str, float]) -> None:
    """Fires after each optimizer step, before logging. ``metrics`` may be extended in place with
    new keys (an existing key must not be overwritten). Return value ignored."""


@hookspec
def on_checkpoint_save(state: TrainState) -> dict[str, Any] | None:
    """Fires while a checkpoint is written. Return the plugin's state as a dict of tensors and
    plain Python values, under keys unique to the plugin (prefix them with its name), or None.
    The engine merges the dicts; a key returned by two plugins is an error. (A component's own
    state goes through ``Component.state_dict`` instead.)"""


@hookspec
def on_checkpoint_load(state: TrainState, blob: dict[str, Any]) -> None:
    """Fires when a run resumes. ``blob`` is the merged dict every plugin returned from
    ``on_checkpoint_save``; each plugin restores its own keys. Return value ignored."""
