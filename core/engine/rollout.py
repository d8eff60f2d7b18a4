"""Roll-outs: G sampled responses per prompt, their masks, and log-probs recomputed by a forward.

Shapes: P prompts, G responses each, B = P·G rollouts, L prompt tokens (left-padded), T response
tokens. Prompt batches come from ``vidrl.models.inputs.prepare_batch``; Qwen-VL processors flatten the
vision patches of all clips into one tensor, so repeating a prompt G times repeats its patch block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from vidrl import ops
from vidrl.engine.shared_prefix import can_share, packed_inputs
from vidrl.models.inputs import (
    FITTED_FRAMES,
    FITTED_IMAGES,
    PER_CLIP_KEYS,
    TOKEN_KEYS,
    VISION_KEYS,
    clip_owners,
    model_inputs,
    repeat_batch,
)
from vidrl.plugin.components import RolloutBackend
from vidrl.types import Generation, RolloutRequest, Sampling


def decode(tokenizer: Any, gen: Generation) -> list[str]:
    """Response texts [B] without padding or special tokens other than the model's own tags."""
    ids = [row[mask.bool()].tolist() for row, mask in zip(gen.response_ids, gen.response_mask, strict=True)]
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def response_mask(response_ids: torch.Tensor, eos_id: int | Sequence[int]) -> torch.Tensor:
    """[B, T] long: 1 on every token up to and including the first ``eos_id`` (or the first of
    any of several), 0 after."""
    stops = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=response_ids.device)
    is_eos = torch.isin(response_ids, stops).long()
    after = torch.cumsum(is_eos, dim=1) - is_eos  # eos tokens seen strictly before this position
    return (after == 0).long()


def rollout(
    backend: RolloutBackend, prompt_batch: Mapping[str, Any], g: int, sampling: Sampling,
    stop_ids: int | Sequence[int], pad_id: int,
) -> Generation:  # fmt: skip
    """G responses per prompt of a processor batch (each ends at its first token of ``stop_ids``)."""
    stops = (stop_ids,) if isinstance(stop_ids, int) else tuple(stop_ids)
    request = RolloutRequest(prompt_batch, g, sampling, stops, pad_id, prompt_batch.get(FITTED_FRAMES),
                             prompt_batch.get(FITTED_IMAGES))  # fmt: skip
    ids = backend.generate(request)
    return Generation(repeat_batch(prompt_batch, g), ids, response_mask(ids, stops), group_size=g)


def given_responses(prompt_batch: Mapping[str, Any], tokenizer: Any, texts: list[str]) -> Generation:
    """A ``Generation`` whose responses are ``texts`` (one per prompt, each ended with the
    tokenizer's end-of-turn token): for teacher forcing (SFT) and preference pairs (DPO).
    Response ids [P, T] right-padded with pad_id; mask 1 on each response's tokens."""
    if len(texts) != prompt_batch["input_ids"].shape[0]:
        raise ValueError(f"{len(texts)} responses for {prompt_batch['input_ids'].shape[0]} prompts")
    ids = [tokenizer(t + tokenizer.eos_token, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(x) for x in ids)
    device = prompt_batch["input_ids"].device
    out = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(out)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.tensor(x, device=device)
        mask[i, : len(x)] = 1
    return Generation(repeat_batch(prompt_batch, 1), out, mask)


def sequence_logprobs(
    model: Any,
    gen: Generation,
    rows: slice | None = None,
    temperature: float = 1.0,
    share_prefix: bool = False,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """log π(response token | prefix) for ``gen`` (or the rows ``rows`` of it): [b, T], 0 where the response
    mask is 0; with ``entropy``, also each of those tokens' entropy of π(· | prefix) at ``temperature``
    [b, T] (detached), from the same forward. One forward over prompt + response with the vision inputs,
    without the columns these rows do not need (``trimmed_lengths``), in which the LM head sees the hidden
    states of the t positions that predict the kept response columns only and projects those of the masked
    positions onto the vocabulary in chunks (``token_logprobs_out``): no [sequence, vocabulary] logits
    tensor is ever built, neither over the prompt (thousands of video tokens) nor over the response. With
    ``share_prefix``, rows that repeat a prompt (``gen.group_size``) are scored by the shared-prefix
    forward (``vidrl.engine.shared_prefix``: the prompt computed once) when the model and the roll-outs
    allow it."""
    rows = rows or slice(None)
    inputs, t = row_inputs(gen, rows)
    resp, mask = gen.response_ids[rows, :t], gen.response_mask[rows, :t]
    entropies: list[torch.Tensor] | None = [] if entropy else None
    if share_prefix and can_share(model, gen, rows):
        packed, at = packed_inputs(model, gen, rows, inputs, t)
        with token_logprobs_out(model, resp, mask.bool(), temperature, at, entropies):
            lp = model(**packed, logits_to_keep=0).logits
    else:
        with token_logprobs_out(model, resp, mask.bool(), temperature, entropies=entropies):
            # the last t + 1 positions reach the head: those predicting the t response tokens, and the last
            lp = model(**inputs, logits_to_keep=t + 1).logits
    width = gen.response_ids.shape[1] - t  # [b, T]: 0 past every row's end
    lp = torch.nn.functional.pad(lp, (0, width))
    return lp if entropies is None else (lp, torch.nn.functional.pad(entropies[-1], (0, width)))


def row_inputs(gen: Generation, rows: slice) -> tuple[dict[str, Any], int]:
    """The per-row forward's inputs for rows ``rows`` of ``gen``: each row's prompt and response,
    without the columns none of them needs (``trimmed_lengths``): ``input_ids``,
    ``attention_mask`` and ``mm_token_type_ids`` [b, lead + t] and the rows' vision inputs; and t."""
    prompt = _slice_prompt(gen.prompt, rows, gen.clip_rows)
    lead, t = trimmed_lengths(gen, rows)
    prompt = {k: v[:, -lead:] if k in TOKEN_KEYS and k in prompt else v for k, v in prompt.items()}
    resp, mask = gen.response_ids[rows, :t], gen.response_mask[rows, :t]
    seen = mask if gen.response_attention is None else gen.response_attention[rows, :t]
    inputs = dict(prompt)
    inputs["input_ids"] = torch.cat([prompt["input_ids"], resp], dim=1)
    inputs["attention_mask"] = torch.cat(
        [prompt["attention_mask"], seen.to(prompt["attention_mask"].dtype)], dim=1
    )
    if "mm_token_type_ids" in prompt:
        types = torch.zeros_like(resp) if gen.response_types is None else gen.response_types[rows, :t]
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], types], dim=1)
    return inputs, t


def trimmed_lengths(gen: Generation, rows: slice) -> tuple[int, int]:
    """(prompt columns, response columns) that rows ``rows`` of ``gen`` need: without the leading
    prompt columns that are padding in every one of them, and the trailing response columns none
    of them attends (nothing there to score). At least one of each."""
    attention = gen.prompt["attention_mask"][rows]
    pad = (attention.sum(0) == 0).long().cumprod(0).sum()  # leading all-padding columns
    seen = gen.response_mask[rows].bool()
    if gen.response_attention is not None:
        seen |= gen.response_attention[rows].bool()
    used = seen.sum(0).nonzero()
    return max(1, attention.shape[1] - int(pad)), int(used.max()) + 1 if len(used) else 1


@contextmanager
def token_logprobs_out(
    model: Any, targets: torch.Tensor, keep: torch.Tensor, temperature: float,
    at: tuple[torch.Tensor, torch.Tensor] | None = None, entropies: list[torch.Tensor] | None = None,
) -> Iterator[None]:  # fmt: skip
    """Within the block, ``model``'s forward returns as ``logits`` the log-probs [b, T] of
    ``targets`` [b, T] where ``keep`` [b, T] (0 elsewhere), computed inside its LM head's forward
    by ``vidrl.ops.linear_token_logprobs`` from the hidden states of the last T + 1 positions
    [b, T + 1, H] (the last one predicts nothing), or with ``at`` = (rows [b, T], positions
    [b, T]) from those hidden states of the forward's [n, N, H]. Inside the forward, so that a
    sharded head (FSDP2) has its whole weight [V, H] there. ``model`` may be wrapped (DDP: ``.module``).
    With ``entropies``, each head forward also appends the tokens' entropies [b, T] (detached) to it."""
    base = getattr(model, "module", model)
    head = base.get_output_embeddings()
    if not isinstance(getattr(head, "weight", None), torch.Tensor) or getattr(head, "bias", None) is not None:
        raise TypeError(f"{type(base).__name__}: expected a bias-free linear LM head, got {head!r}")

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        h = hidden[:, :-1][keep] if at is None else hidden[at[0][keep], at[1][keep]]
        w = head.weight
        with torch.autocast(h.device.type, enabled=False):  # in the head's dtype: float32 (FSDP2 too)
            out = ops.linear_token_logprobs(
                h.to(w.dtype), w, targets[keep], temperature, return_entropy=entropies is not None
            )
        values = out if entropies is None else out[0]
        if entropies is not None:
            entropies.append(_scatter(out[1].detach(), keep))
        return _scatter(values, keep)

    own = vars(head).get("forward")  # a forward some wrapper set on the instance, put back after
    head.forward = forward  # an instance attribute: the module's hooks (FSDP2's gather) still run
    try:
        yield
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


def _scatter(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[b, T]: ``values`` [n] where ``keep`` [b, T] holds its n True entries, 0 elsewhere."""
    return torch.zeros(keep.shape, dtype=values.dtype, device=values.device).masked_scatter(keep, values)


def _slice_prompt(
    prompt: dict[str, Any], rows: slice, clip_rows: torch.Tensor | None = None
) -> dict[str, Any]:
    """The model inputs of rows ``rows`` of a prompt batch, vision blocks included: each clip
    (image) belongs to the row its owners name (``vidrl.models.inputs.clip_owners``; a row may
    hold none or several), a video to row ``clip_rows[i]`` when given (a tool roll-out's)."""
    n = prompt["input_ids"].shape[0]
    start, stop, _ = rows.indices(n)
    vision = {k for pair in VISION_KEYS for k in pair} | set(PER_CLIP_KEYS)
    out = {k: v[rows] for k, v in model_inputs(prompt).items() if k not in vision and v.shape[:1] == (n,)}
    for pixels, grid in VISION_KEYS:
        if pixels not in prompt:
            continue
        video = pixels == "pixel_values_videos"
        owner = clip_rows.tolist() if clip_rows is not None and video else clip_owners(prompt, pixels)
        keep = [c for c, r in enumerate(owner) if start <= r < stop]
        if keep:  # rows that hold no clip of this kind get no vision input of it
            blocks = torch.split(prompt[pixels], prompt[grid].prod(-1).tolist())
            out[pixels], out[grid] = torch.cat([blocks[c] for c in keep]), prompt[grid][keep]
            for key in PER_CLIP_KEYS:
                if key in prompt and video:
                    out[key] = torch.as_tensor(prompt[key]).reshape(-1)[keep]
    return out
