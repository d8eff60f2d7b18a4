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
from typing import Any

import pluggy

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
def on_rollouts_scored(batch: Any, state: Any) -> None:
    """Fires after the rewards of a rollout batch are computed and before advantages are.

    ``batch`` holds the rollouts with their rewards; ``state`` the training state. Replay buffers
    and difficulty trackers update here. Return value ignored.
    """


@hookspec
def on_step_end(state: Any, metrics: dict[str, float]) -> None:
    """Fires after each optimizer step, before logging. ``metrics`` may be extended in place with
    new keys (an existing key must not be overwritten). Return value ignored."""


@hookspec
def on_checkpoint_save(state: Any) -> dict[str, Any] | None:
    """Fires while a checkpoint is written. Return the plugin's state as a dict of tensors and
    plain Python values, under keys unique to the plugin (prefix them with its name), or None.
    The engine merges the dicts; a key returned by two plugins is an error."""


@hookspec
def on_checkpoint_load(state: Any, blob: dict[str, Any]) -> None:
    """Fires when a run resumes. ``blob`` is the merged dict every plugin returned from
    ``on_checkpoint_save``; each plugin restores its own keys. Return value ignored."""
