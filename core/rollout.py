"""Roll-outs: G sampled responses per prompt, their masks, and log-probs recomputed by a forward.

Shapes: P prompts, G responses each, B = P·G rollouts, L prompt tokens (left-padded), T response
tokens. Prompt batches come from ``vidrl.inputs.prepare_batch``; Qwen-VL processors flatten the
vision patches of all clips into one tensor, so repeating a prompt G times repeats its patch block.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from vidrl import ops

#: per-clip tensors, with the grid that says how many flattened patch rows each clip owns
VISION_KEYS = (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw"))
PER_CLIP_KEYS = ("second_per_grid_ts",)


def repeat_batch(batch: Mapping[str, Any], g: int) -> dict[str, Any]:
    """Each prompt of a processor batch repeated ``g`` times in place ([P, ...] → [P·g, ...]),
    vision patch blocks included. Assumes one clip per prompt for each vision key present."""
    _check_one_clip_per_prompt(batch)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if not torch.is_tensor(value):
            continue
        out[key] = value.repeat_interleave(g, dim=0)
    for pixels, grid in VISION_KEYS:
        if pixels in batch:
            sizes = batch[grid].prod(-1).tolist()
            blocks = torch.split(batch[pixels], sizes)
            out[pixels] = torch.cat([b for b in blocks for _ in range(g)])
    for key in PER_CLIP_KEYS:
        if key in batch and not torch.is_tensor(batch[key]):
            out[key] = torch.tensor(batch[key]).repeat_interleave(g, dim=0)
    return out


@dataclass(frozen=True)
class Sampling:
    """Sampling options of a roll-out."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256


@dataclass(frozen=True)
class Generation:
    """``prompt``: the repeated prompt batch (input_ids [B, L] and vision inputs);
    ``response_ids`` [B, T]; ``response_mask`` [B, T], 1 up to and including the end-of-turn
    token, 0 after it."""

    prompt: dict[str, Any]
    response_ids: torch.Tensor
    response_mask: torch.Tensor


class RolloutBackend(abc.ABC):
    """Produces responses for prompt batches. The trainer recomputes log-probs itself, so a
    backend returns token ids only (a faster engine such as vLLM fits behind this interface)."""

    @abc.abstractmethod
    def generate(self, prompt: dict[str, Any], sampling: Sampling) -> torch.Tensor:
        """Response token ids [B, T] for the (already repeated) prompt batch, padded with pad_id."""


class HFGenerate(RolloutBackend):
    """Hugging Face ``model.generate`` with sampling; stops at end-of-turn."""

    def __init__(self, model: Any, eos_id: int, pad_id: int):
        self.model, self.eos_id, self.pad_id = model, eos_id, pad_id

    @torch.no_grad()
    def generate(self, prompt: dict[str, Any], sampling: Sampling) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                **prompt, do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                max_new_tokens=sampling.max_new_tokens, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
            )  # fmt: skip
        finally:
            self.model.train(was_training)
        return out[:, prompt["input_ids"].shape[1] :]


def response_mask(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, T] long: 1 on every token up to and including the first ``eos_id``, 0 after."""
    is_eos = (response_ids == eos_id).long()
    after = torch.cumsum(is_eos, dim=1) - is_eos  # eos tokens seen strictly before this position
    return (after == 0).long()


def rollout(
    backend: RolloutBackend, prompt_batch: Mapping[str, Any], g: int, sampling: Sampling, eos_id: int
) -> Generation:
    """G responses per prompt of a processor batch."""
    prompt = repeat_batch(prompt_batch, g)
    ids = backend.generate(prompt, sampling)
    return Generation(prompt, ids, response_mask(ids, eos_id))


def sequence_logprobs(
    model: Any, gen: Generation, rows: slice | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """log π(response token | prefix) for ``gen`` (or the rows ``rows`` of it): [b, T], 0 where
    the response mask is 0. One forward over prompt + response with the vision inputs; the
    log-softmax goes through ``vidrl.ops.token_logprobs`` on the masked positions only."""
    rows = rows or slice(None)
    prompt = _slice_prompt(gen.prompt, rows)
    resp, mask = gen.response_ids[rows], gen.response_mask[rows]
    inputs = dict(prompt)
    inputs["input_ids"] = torch.cat([prompt["input_ids"], resp], dim=1)
    inputs["attention_mask"] = torch.cat(
        [prompt["attention_mask"], mask.to(prompt["attention_mask"].dtype)], dim=1
    )
    if "mm_token_type_ids" in prompt:
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(resp)], dim=1)
    logits = model(**inputs).logits[:, prompt["input_ids"].shape[1] - 1 : -1]  # [b, T, V]: predicts resp
    keep = mask.bool()
    out = torch.zeros(resp.shape, dtype=torch.float32, device=resp.device)
    if keep.any():
        out = out.masked_scatter(keep, ops.token_logprobs(logits[keep], resp[keep], temperature))
    return out


def _check_one_clip_per_prompt(batch: Mapping[str, Any]) -> None:
    n = batch["input_ids"].shape[0]
    for _, grid in VISION_KEYS:
        if grid in batch and batch[grid].shape[0] != n:
            raise ValueError(
                f"{grid} has {batch[grid].shape[0]} clips for {n} prompts: roll-outs need exactly one clip "
                "per prompt when any prompt has one (batch video and text-only prompts separately)"
            )


def _slice_prompt(prompt: dict[str, Any], rows: slice) -> dict[str, Any]:
    if rows == slice(None):
        return prompt
    n = prompt["input_ids"].shape[0]
    idx = range(n)[rows]
    out = {k: v[rows] for k, v in prompt.items() if torch.is_tensor(v) and v.shape[:1] == (n,)}
    for pixels, grid in VISION_KEYS:
        if pixels in prompt:
            sizes = prompt[grid].prod(-1).tolist()
            blocks = torch.split(prompt[pixels], sizes)
            out[pixels] = torch.cat([blocks[i] for i in idx])
    return out
