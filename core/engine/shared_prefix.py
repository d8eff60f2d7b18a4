"""The shared-prefix forward: a prompt's G responses scored in one sequence that holds the prompt
once (as in Prefix Grouper, arXiv 2506.05433).

Each packed row is [prompt p (unpadded, L_p tokens) | response 1 | ... | response k] for the k
rows of prompt p in the micro-batch, each response cut after its last attended token. A 4-D
attention mask lets every response token see the whole prompt and the earlier tokens of its own
response only; M-RoPE positions are the model's own for the prompt, and continue from the
prompt's largest position in every response, as they would after the prompt alone. The vision
tower and the language model then compute each prompt once per micro-batch instead of k times,
and its gradient is the sum over the k responses within one graph: exact (log-probs and gradients
equal the per-row forward's to float rounding; ``tests/core/test_shared_prefix.py``).

Shapes: b rows of the micro-batch, u distinct prompts among them, N the longest packed row, T
response columns. Qwen-VL models (``get_rope_index``) with sdpa or eager attention (a 4-D mask
is not a flash-attention input); single-turn roll-outs only (tool observations carry clips of
their own inside responses).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from vidrl.models.inputs import PER_CLIP_KEYS, TOKEN_KEYS, VISION_KEYS
from vidrl.types import Generation

#: get_rope_index arguments taken from a prompt batch when present
ROPE_KEYS = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids", "attention_mask")


def language_backbone(model: Any) -> Any:
    """The module with ``get_rope_index`` (Qwen-VL's inner model), or None; ``model`` may be
    wrapped (DDP ``.module``, peft ``get_base_model``)."""
    base = getattr(model, "module", model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    inner = getattr(base, "model", None)
    return inner if hasattr(inner, "get_rope_index") else None


def can_share(model: Any, gen: Generation, rows: slice) -> bool:
    """Whether rows ``rows`` of ``gen`` can take the shared-prefix forward and gain from it: two
    or more of them share a prompt, the roll-outs are single-turn, the model is a Qwen-VL one
    with sdpa or eager attention."""
    if gen.group_size < 2 or not any(len(members) > 1 for members in groups(gen, rows)):
        return False
    if gen.clip_rows is not None or gen.response_types is not None or gen.response_attention is not None:
        return False
    inner = language_backbone(model)
    return getattr(getattr(inner, "config", None), "_attn_implementation", None) in ("sdpa", "eager")


def groups(gen: Generation, rows: slice) -> list[list[int]]:
    """The rows of ``rows`` by the prompt they repeat (consecutive runs of ``gen.group_size``)."""
    start, stop, _ = rows.indices(len(gen.response_ids))
    g = gen.group_size
    return [
        list(range(max(start, p * g), min(stop, (p + 1) * g))) for p in range(start // g, (stop - 1) // g + 1)
    ]


def packed_inputs(
    model: Any, gen: Generation, rows: slice
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """(model inputs of the u packed rows [u, N], and for each of the b rows and T' = its longest
    used response the packed row [b, T'] and position [b, T'] whose hidden state predicts that
    response token)."""
    start, stop, _ = rows.indices(len(gen.response_ids))
    mask, by_prompt = gen.response_mask, groups(gen, rows)
    prompts = _select_prompts(gen.prompt, [members[0] for members in by_prompt])
    positions = _prompt_positions(language_backbone(model), prompts)  # [3, u, L]
    used = [int(mask[r].nonzero().max()) + 1 if mask[r].any() else 1 for r in range(start, stop)]
    width = max(used)
    prow = torch.zeros(stop - start, width, dtype=torch.long)
    pcol = torch.zeros_like(prow)
    seqs = []
    for j, members in enumerate(by_prompt):
        keep = prompts["attention_mask"][j].bool()
        ids, pos = prompts["input_ids"][j][keep], positions[:, j][:, keep]
        dev = ids.device
        parts, part_pos, seg, nxt = [ids], [pos], [torch.full((len(ids),), -1, device=dev)], pos.max() + 1
        for i, r in enumerate(members):
            t, off = used[r - start], sum(len(x) for x in parts)
            parts.append(gen.response_ids[r, :t])
            part_pos.append((nxt + torch.arange(t, device=dev)).expand(3, t))
            seg.append(torch.full((t,), i, device=dev))
            prow[r - start] = j
            pcol[r - start, :t] = torch.cat([torch.tensor([len(ids) - 1]), off + torch.arange(t - 1)])
        seqs.append((torch.cat(parts), torch.cat(part_pos, 1), torch.cat(seg)))
    dev = gen.response_ids.device
    return _collate(prompts, seqs, gen.response_ids[start]), prow.to(dev), pcol.to(dev)


def _collate(
    prompts: dict[str, Any], seqs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], filler: torch.Tensor
) -> dict[str, Any]:
    """The packed rows right-padded to N with ``filler`` (a response token: never a media
    placeholder), their positions [3, u, N], the 4-D mask [u, 1, N, N] (a padding position
    sees itself only, so that no softmax row is empty) and the prompts' vision inputs."""
    n = max(len(ids) for ids, _, _ in seqs)
    device = seqs[0][0].device
    ids = torch.full((len(seqs), n), int(filler[0]), dtype=torch.long, device=device)
    pos = torch.zeros(3, len(seqs), n, dtype=torch.long, device=device)
    allowed = torch.eye(n, dtype=torch.bool, device=device).repeat(len(seqs), 1, 1)
    types = torch.zeros_like(ids)
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    for j, (x, p, seg) in enumerate(seqs):
        m = len(x)
        ids[j, :m], pos[:, j, :m] = x, p
        same = (seg[None, :] == -1) | (seg[None, :] == seg[:, None])
        allowed[j, :m, :m] = causal[:m, :m] & same
        if "mm_token_type_ids" in prompts:
            keep = prompts["attention_mask"][j].bool()
            t = prompts["mm_token_type_ids"][j][keep]
            types[j, : len(t)] = t
    out = {k: v for k, v in prompts.items() if k not in TOKEN_KEYS}
    out.update(input_ids=ids, position_ids=pos, attention_mask=allowed[:, None])
    if "mm_token_type_ids" in prompts:
        out["mm_token_type_ids"] = types
    return out


def _select_prompts(prompt: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """Rows ``idx`` of a repeated prompt batch (one clip per row), their vision blocks included."""
    n = prompt["input_ids"].shape[0]
    out = {k: v[idx] for k, v in prompt.items() if torch.is_tensor(v) and v.shape[:1] == (n,)}
    for pixels, grid in VISION_KEYS:
        if pixels in prompt:
            blocks = torch.split(prompt[pixels], prompt[grid].prod(-1).tolist())
            out[pixels] = torch.cat([blocks[i] for i in idx])
            out[grid] = prompt[grid][idx]
    for key in PER_CLIP_KEYS:
        if key in prompt:
            out[key] = torch.as_tensor(prompt[key]).reshape(-1)[idx]
    return out


def _prompt_positions(inner: Any, prompts: dict[str, Any]) -> torch.Tensor:
    """The model's own M-RoPE positions [3, u, L] of the left-padded prompts."""
    accepted = inspect.signature(inner.get_rope_index).parameters
    kwargs = {k: prompts[k] for k in ROPE_KEYS if k in prompts and k in accepted}
    return inner.get_rope_index(prompts["input_ids"], **kwargs)[0]
