"""Triton implementations of the ``vidrl.ops`` primitives, registered as the plugin ``kernels``.

Importing this package does not import triton: each kernel module loads on first use, so the
plugin loads (and reports itself unavailable) on machines without triton or a GPU. On CUDA
tensors ``vidrl.ops`` dispatches here; ``VIDRL_KERNELS=off`` forces the references.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

import torch

import vidrl


@functools.cache
def _missing() -> str | None:
    try:
        found = importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or blocked install (sys.modules["triton"] = None)
        found = False
    if not found:
        return "triton is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


class _Triton(vidrl.Kernel):
    module: str

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _missing()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(importlib.import_module(f"vidrl.kernels.{self.module}"), self.name)
        return fn(*args, **kwargs)


class TokenLogprobs(_Triton):
    """Fused log-softmax-gather (and entropy) over logits [N, V]: one read forward, one backward."""

    name = "token_logprobs"
    module = "logprobs"


class LinearTokenLogprobs(_Triton):
    """Log-probs from hidden [N, H] and LM head [V, H], chunked over N, never [N, V]."""

    name = "linear_token_logprobs"
    module = "linear_logprobs"


class GroupAdvantages(_Triton):
    """Group advantages of rewards [B] in one launch, one program per group."""

    name = "group_advantages"
    module = "advantages"


@vidrl.hookimpl
def register_kernels(register):
    register(TokenLogprobs)
    register(LinearTokenLogprobs)
    register(GroupAdvantages)
