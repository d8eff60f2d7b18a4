"""Which implementation serves each ``vidrl.ops`` primitive.

The table is process-wide, like torch's own dispatcher: ``Session.load()`` installs the kernels
its plugins registered (replacing any earlier table), and each primitive call looks up the input's
device. A registered kernel serves the device types it declares when ``available()``; everything
else runs the pure-torch reference. ``VIDRL_KERNELS=off`` forces the reference everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from vidrl.errors import VidrlError

PRIMITIVES = ("token_logprobs", "linear_token_logprobs", "group_advantages")
ENV = "VIDRL_KERNELS"
ENV_CHOICES = ("on", "off")

_active: dict[str, Any] = {}


def install(kernels: Mapping[str, Any]) -> None:
    """Make ``kernels`` (primitive name → Kernel instance) the active table."""
    unknown = set(kernels) - set(PRIMITIVES)
    if unknown:
        raise VidrlError(f"kernels for unknown primitives {sorted(unknown)}; valid: {', '.join(PRIMITIVES)}")
    _active.clear()
    _active.update(kernels)


def kernels_enabled() -> bool:
    value = os.environ.get(ENV, "on").strip().lower()
    if value not in ENV_CHOICES:
        raise VidrlError(f"{ENV}={value!r} is not valid; valid choices: {', '.join(ENV_CHOICES)}")
    return value == "on"


def lookup(primitive: str, device: torch.device) -> Any | None:
    """The kernel serving ``primitive`` on ``device``, or None for the reference."""
    kernel = _active.get(primitive)
    if kernel is None or not kernels_enabled():
        return None
    if device.type in kernel.devices and kernel.available():
        return kernel
    return None


def describe() -> dict[str, str]:
    """primitive → one line saying which implementation runs where (for ``vidrl plugins``)."""
    out = {}
    for name in PRIMITIVES:
        kernel = _active.get(name)
        if kernel is None:
            out[name] = "reference (no kernel registered)"
        elif not kernels_enabled():
            out[name] = f"reference ({ENV}=off; {type(kernel).__name__} registered)"
        else:
            where = "/".join(sorted(kernel.devices))
            state = "available" if kernel.available() else f"unavailable here: {kernel.unavailable_reason()}"
            out[name] = f"{type(kernel).__name__} on {where} ({state}); reference elsewhere"
    return out
