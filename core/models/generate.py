"""The built-in roll-out backend: Hugging Face ``model.generate``."""

from __future__ import annotations

from typing import Any

import torch

from vidrl.models.sharding import gathered
from vidrl.plugin.components import RolloutBackend
from vidrl.types import Sampling

#: model-config keys of media placeholder tokens: a response must never contain one (the next
#: forward would look for vision features that do not exist)
MEDIA_TOKEN_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


class HFGenerate(RolloutBackend):
    """Hugging Face ``model.generate`` (sampling, or greedy at temperature 0); stops at
    end-of-turn; never emits media placeholder tokens. A model sharded by FSDP2 is gathered for
    the call unless a caller already has (``vidrl.models.sharding.gathered``): then every process
    must call it equally often."""

    def __init__(self, model: Any, eos_id: int, pad_id: int):
        self.model, self.eos_id, self.pad_id = model, eos_id, pad_id
        ids = [getattr(model.config, k, None) for k in MEDIA_TOKEN_KEYS]
        self.suppress = sorted({i for i in ids if isinstance(i, int)})

    @torch.no_grad()
    def generate(self, prompt: dict[str, Any], sampling: Sampling) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        if sampling.temperature > 0:
            how = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        else:
            how = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        try:
            with gathered(self.model):  # sharded (FSDP2): whole once, no per-token gathering or syncing
                out = self.model.generate(
                    **prompt, **how, max_new_tokens=sampling.max_new_tokens, eos_token_id=self.eos_id,
                    pad_token_id=self.pad_id, suppress_tokens=self.suppress or None, synced_gpus=False,
                )  # fmt: skip
        finally:
            self.model.train(was_training)
        return out[:, prompt["input_ids"].shape[1] :]
