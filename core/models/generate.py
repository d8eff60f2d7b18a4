"""The built-in roll-out backend: Hugging Face ``model.generate``, each prompt prefilled once."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from vidrl.models.inputs import TOKEN_KEYS, model_inputs, repeat_batch
from vidrl.models.positions import language_backbone, text_offsets
from vidrl.models.sharding import gathered
from vidrl.plugin.components import RolloutBackend
from vidrl.types import RolloutRequest

#: model-config keys of media placeholder tokens: a response must never contain one (the next
#: forward would look for vision features that do not exist)
MEDIA_TOKEN_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


class HFGenerate(RolloutBackend):
    """Hugging Face ``model.generate`` (sampling, or greedy at temperature 0); stops at the
    request's stop ids; never emits media placeholder tokens. A model sharded by FSDP2 is
    gathered for the call unless a caller already has (``vidrl.models.sharding.gathered``): then
    every process must call it equally often.

    With ``share_prompt`` (the default) each prompt is prefilled once — its clip through the
    vision tower and its tokens through the language model — and the KV cache copied to its G
    samples, instead of G prefills of the same thousands of video tokens: the same tokens as G
    prefills (tested greedy and sampled, Qwen2-VL, Qwen2.5-VL, Qwen3-VL). ``static_cache``: a
    static KV cache instead (transformers then compiles the decoding step on CUDA); it prefills
    every copy, since a static cache has a fixed batch."""

    name = "hf_generate"

    @dataclass(frozen=True)
    class Config:
        share_prompt: bool = True
        static_cache: bool = False

    def attach(self, model: Any) -> HFGenerate:
        self.model = model
        ids = [getattr(model.config, k, None) for k in MEDIA_TOKEN_KEYS]
        self.suppress = sorted({i for i in ids if isinstance(i, int)})
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: the model's own
        params = inspect.signature(inner.forward).parameters
        #: transformers 5.24 names the KV cache ``cache``, earlier releases ``past_key_values``
        self.cache_key = "cache" if "cache" in params else "past_key_values"
        return self

    @torch.no_grad()
    def generate(self, request: RolloutRequest) -> torch.Tensor:
        s, batch = request.sampling, request.batch
        if s.temperature > 0:
            how = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
        else:
            how = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        # the model's own generation_config.json must not reshape the policy's distribution (Qwen2.5-VL
        # Instruct ships top_k 1 and repetition_penalty 1.05): the samples must be the policy's own
        how.update(max_new_tokens=s.max_new_tokens, eos_token_id=list(request.stop_ids), synced_gpus=False,
                   pad_token_id=request.pad_id, suppress_tokens=self.suppress or None, repetition_penalty=1.0,
                   no_repeat_ngram_size=0, min_new_tokens=0, typical_p=1.0, epsilon_cutoff=0.0,
                   eta_cutoff=0.0)  # fmt: skip
        was_training = self.model.training
        self.model.eval()
        try:
            with gathered(self.model):  # sharded (FSDP2): whole once, no per-token gathering or syncing
                out = self._generate(batch, request.group_size, how)
        finally:
            self.model.train(was_training)
        return out[:, batch["input_ids"].shape[1] :]

    def _generate(self, batch: dict[str, torch.Tensor], g: int, how: dict[str, Any]) -> torch.Tensor:
        """Prompt + response ids [P·G, L + T]."""
        if self.config.static_cache or not self.config.share_prompt or g == 1:
            every = model_inputs(batch if g == 1 else repeat_batch(batch, g))
            static = {"cache_implementation": "static"} if self.config.static_cache else {}
            return self.model.generate(**every, **how, **static)
        cache = self._prefill(model_inputs(batch), g)
        text = {k: v.repeat_interleave(g, dim=0) for k, v in batch.items() if k in TOKEN_KEYS}
        return self.model.generate(**text, **how, **{self.cache_key: cache})

    def _prefill(self, batch: dict[str, torch.Tensor], g: int) -> Any:
        """The KV cache of every prompt token but the last (which ``generate`` then feeds), from one
        forward over the P prompts with their vision inputs, repeated for the G samples of each
        ([P, ...] → [P·G, ...]). A Qwen-VL model continues a cached sequence at its text position
        plus ``rope_deltas`` [P·G, 1]: set here from the positions the model computes for the
        whole prompt, as ``generate`` does not from a prefill of part of it."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        head = {k: v[:, :-1] if k in TOKEN_KEYS else v for k, v in batch.items()}
        self.model(**head, **{self.cache_key: cache}, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(g)
        inner = language_backbone(self.model)
        if inner is not None and hasattr(inner, "rope_deltas"):
            inner.rope_deltas = text_offsets(inner, batch).repeat_interleave(g, dim=0)
        return cache
