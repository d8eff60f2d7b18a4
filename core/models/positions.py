"""M-RoPE positions as the model computes them itself (Qwen-VL's ``get_rope_index``), for the
forwards vidrl arranges differently from a plain left-padded batch: generation continued from a
shared prefill, and the shared-prefix forward."""

from __future__ import annotations

import inspect
from typing import Any

import torch

#: get_rope_index arguments taken from a batch when present
ROPE_KEYS = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids", "attention_mask")


def language_backbone(model: Any) -> Any:
    """The module with ``get_rope_index`` (Qwen-VL's inner model), or None; ``model`` may be
    wrapped (DDP ``.module``, peft ``get_base_model``)."""
    base = getattr(model, "module", model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    inner = getattr(base, "model", None)
    return inner if hasattr(inner, "get_rope_index") else None


def rope_positions(inner: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """The M-RoPE positions [3, b, W] the model computes for the left-padded ``inputs`` (input_ids
    [b, W], attention_mask, grids, ...)."""
    accepted = inspect.signature(inner.get_rope_index).parameters
    kwargs = {k: inputs[k] for k in ROPE_KEYS if k in inputs and k in accepted}
    return inner.get_rope_index(inputs["input_ids"], **kwargs)[0]


def text_offsets(inner: Any, prompts: dict[str, Any]) -> torch.Tensor:
    """[P, 1]: what to add to a token's text position (its index among the real tokens) after
    each left-padded prompt to get its M-RoPE position (the same on all three axes for text):
    the last prompt token's position minus its text position."""
    last = rope_positions(inner, prompts)[0, :, -1]
    return (last - (prompts["attention_mask"].sum(1) - 1)).view(-1, 1)
