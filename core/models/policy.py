"""The policy: a model directory loaded through ``AutoModelForImageTextToText``, frozen parts,
and the ``Policy`` a run trains (model, processor, special token ids)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from vidrl.errors import ConfigError
from vidrl.models.shared_vision import share_identical_clips

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Policy:
    """The trained model (DDP-wrapped when data-parallel: use ``model`` for forwards, ``base``
    for ``generate`` and saving), its processor, and the end-of-turn / padding token ids."""

    def __init__(self, model: Any, base: Any, processor: Any):
        self.model, self.base, self.processor = model, base, processor
        self.tokenizer = processor.tokenizer
        self.eos_id = self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)
        self.pad_id = self.tokenizer.pad_token_id


def resolve_precision(precision: str) -> str:
    """``model.precision`` with ``auto`` decided: bf16-mixed on a CUDA device with bf16, else fp32."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass. Non-reentrant, so a frozen
    vision tower (inputs that need no gradient) is fine; the KV cache is off while training."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 (the older name warns)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def load_model(path: str | Path, dtype: str = "float32", attn: str = "auto") -> Any:
    """A model directory through ``AutoModelForImageTextToText``; ``attn`` "auto" picks
    flash_attention_2 when flash-attn is installed and CUDA is present, else sdpa. Its vision
    tower encodes each clip once per forward, however many rows repeat it
    (``vidrl.models.shared_vision``)."""
    from transformers import AutoModelForImageTextToText

    if attn == "auto":
        has_flash = importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
        attn = "flash_attention_2" if has_flash else "sdpa"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn)
    share_identical_clips(model)
    return model


def freeze(model: Any, parts: tuple[str, ...]) -> int:
    """Stop training every parameter whose name contains one of ``parts``; returns how many.
    A part that matches no parameter is an error (a typo would silently train everything)."""
    hits = {p: 0 for p in parts}
    for name, param in model.named_parameters():
        for p in parts:
            if p in name:
                param.requires_grad_(False)
                hits[p] += 1
    unmatched = [p for p, n in hits.items() if n == 0]
    if unmatched:
        raise ConfigError([f"model.freeze: {p!r} matches no parameter name" for p in unmatched])
    return sum(hits.values())


def trainable_model(path: str | Path, config: Any, adapters: Path | None = None, seed: int = 0) -> Any:
    """The model to train, from the ``ModelConfig`` ``config``: ``path``'s weights in float32 (the
    master weights), gradient checkpointing when asked, then either LoRA adapters (new ones drawn
    from ``seed``, or those saved in ``adapters`` when resuming) or the ``freeze`` list applied."""
    model = load_model(path, "float32", config.attn_implementation)
    model.train()
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.lora is None:
        freeze(model, config.freeze)
        return model
    with torch.random.fork_rng(devices=[]):  # the same adapters for the same seed, whatever ran before
        torch.manual_seed(seed)
        return with_lora(model, config.lora, adapters)


def with_lora(model: Any, lora: Any, adapters: Path | None = None) -> Any:
    """``model`` as a peft model with LoRA adapters on the language model's ``lora.target_modules``
    (never the vision tower): new ones, or those saved in ``adapters``."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapters is not None:
        return PeftModel.from_pretrained(model, adapters, is_trainable=True)
    names = "|".join(lora.target_modules)
    target = rf"^(?!.*\bvisual\b).*\.({names})$"  # a regex: full match on module names
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=target)
    return get_peft_model(model, config)


class AdapterDisabled(torch.nn.Module):
    """A LoRA policy seen with its adapters off: the base model, used as the reference without a
    second copy in memory. ``module`` is the peft model (forwards run under ``disable_adapter``)."""

    def __init__(self, peft_model: Any):
        super().__init__()
        self.module = peft_model

    def forward(self, **inputs: Any) -> Any:
        with self.module.disable_adapter():
            return self.module(**inputs)


def save_final(model: Any, processor: Any, out: Path, merge: bool, weights: dict | None = None) -> None:
    """The run's final ``model/``: a peft model merged into its base when ``merge`` (then a plain
    model directory; the model is changed in place), else its adapters; any other model as is
    (``weights``: its full state dict, when it is sharded)."""
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out, **({} if weights is None else {"state_dict": weights}))
    processor.save_pretrained(out)


def autocast_forward(model: Any, autocast: Callable[[], AbstractContextManager]) -> Any:
    """``model`` with its forward (and so ``generate``, which calls it) run under ``autocast()``:
    for what accelerate's own wrapping does not reach (a peft model's inner model, whose
    ``generate`` bypasses the wrapped outer forward; the frozen reference)."""
    forward = model.forward

    @functools.wraps(forward)
    def call(*args: Any, **kwargs: Any) -> Any:
        with autocast():
            return forward(*args, **kwargs)

    model.forward = call
    return model
