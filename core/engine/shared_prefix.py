"""The shared-prefix forward: a prompt's G responses scored in one sequence that holds the prompt
once (as in Prefix Grouper, arXiv 2506.05433).

Each packed row is [prompt p (unpadded) | response 1 | ... | response k] for the k rows of
prompt p in the micro-batch, each response cut after its last attended token (a tool roll-out's
response holds its observations, clips included). A 4-D attention mask lets every response token
see the whole prompt and the earlier tokens of its own response only, and every token keeps the
M-RoPE position the per-row forward gives it (the model's own ``get_rope_index`` over the per-row
inputs). The vision tower and the language model then compute each prompt once per micro-batch
instead of k times, and its gradient is the sum over the k responses within one graph: exact
(log-probs and gradients equal the per-row forward's to float rounding;
``tests/core/test_shared_prefix.py``).

Shapes: b rows of the micro-batch, u distinct prompts among them, N the longest packed row, t
response columns. Qwen-VL models (``get_rope_index``) with sdpa attention: it takes the boolean
4-D mask (eager attention would add it as numbers, flash-attention takes none).
"""

from __future__ import annotations

from typing import Any

import torch

from vidrl.models.inputs import PER_CLIP_KEYS, VISION_KEYS, clip_owners
from vidrl.models.positions import language_backbone, rope_positions
from vidrl.types import Generation


def can_share(model: Any, gen: Generation, rows: slice) -> bool:
    """Whether rows ``rows`` of ``gen`` can take the shared-prefix forward and gain from it: two
    or more of them repeat a prompt, and the model is a Qwen-VL one with sdpa attention."""
    if gen.group_size < 2 or not any(len(members) > 1 for members in prompt_groups(gen, rows)):
        return False
    if "pixel_values" in gen.prompt:  # images: not yet (their blocks and the videos' interleave)
        return False
    inner = language_backbone(model)
    return getattr(getattr(inner, "config", None), "_attn_implementation", None) == "sdpa"


def prompt_groups(gen: Generation, rows: slice) -> list[list[int]]:
    """The rows of ``rows`` by the prompt they repeat (consecutive runs of ``gen.group_size``),
    as indices into ``rows``."""
    start, stop, _ = rows.indices(len(gen.response_ids))
    g = gen.group_size
    return [
        list(range(max(start, p * g) - start, min(stop, (p + 1) * g) - start))
        for p in range(start // g, (stop - 1) // g + 1)
    ]


def packed_inputs(
    model: Any, gen: Generation, rows: slice, inputs: dict[str, Any], t: int
) -> tuple[dict[str, Any], tuple[torch.Tensor, torch.Tensor]]:
    """The packed rows' model inputs [u, N] from the per-row forward's ``inputs`` [b, lead + t]
    (``vidrl.engine.rollout.row_inputs``), and for each row and response column the packed row
    and position [b, t] whose hidden state predicts that token. Every position id is the one the
    per-row forward computes (the model's ``get_rope_index`` on ``inputs``), so observation clips
    inside tool roll-outs keep theirs too."""
    lead = inputs["input_ids"].shape[1] - t
    inner = language_backbone(model)
    positions = rope_positions(inner, inputs)  # [3, b, lead + t]
    clips = _clip_owners(gen, rows)
    in_prompt = _prompt_holds_clip(inner, inputs, lead)
    attend = inputs["attention_mask"].bool()
    prow = torch.zeros(attend.shape[0], t, dtype=torch.long)
    pcol = torch.zeros_like(prow)
    seqs, order = [], []
    for j, members in enumerate(prompt_groups(gen, rows)):
        first = members[0]
        keep = attend[first, :lead]
        cols = [torch.arange(lead, device=keep.device)[keep]]
        picks = [(first, cols[0])]
        for m in members:
            used = int(attend[m, lead:].nonzero().max()) + 1 if attend[m, lead:].any() else 1
            off, prompt_len = sum(len(c) for c in cols), len(cols[0])
            cols.append(lead + torch.arange(used, device=keep.device))
            picks.append((m, cols[-1]))
            prow[m] = j
            pcol[m, :used] = torch.cat([torch.tensor([prompt_len - 1]), off + torch.arange(used - 1)])
            mine = [c for c, owner in enumerate(clips) if owner == m]
            order += mine if m == first or not in_prompt[m] else mine[1:]
        seqs.append(picks)
    dev = gen.response_ids.device
    filler = int(inputs["input_ids"][0, lead - 1])  # a prompt's last token: text, never a media placeholder
    return _collate(inputs, positions, seqs, order, filler), (prow.to(dev), pcol.to(dev))


def _collate(
    inputs: dict[str, Any],
    positions: torch.Tensor,
    seqs: list[list[tuple[int, torch.Tensor]]],
    order: list[int],
    filler: int,
) -> dict[str, Any]:
    """The packed rows: each the concatenation of (row, columns) picks of ``inputs``, right-padded
    to N with ``filler`` (a text token); their positions [3, u, N];
    the 4-D mask [u, 1, N, N] (a response sees the prompt and its own earlier tokens; a padding
    position only itself, so that no softmax row is empty); the clips ``order`` of ``inputs``."""
    n = max(sum(len(c) for _, c in picks) for picks in seqs)
    ids = inputs["input_ids"]
    device, u = ids.device, len(seqs)
    out_ids = torch.full((u, n), filler, dtype=torch.long, device=device)
    out_pos = torch.zeros(3, u, n, dtype=torch.long, device=device)
    out_types = torch.zeros_like(out_ids)
    allowed = torch.eye(n, dtype=torch.bool, device=device).repeat(u, 1, 1)
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    for j, picks in enumerate(seqs):
        seg = torch.cat([torch.full((len(c),), k - 1, device=device) for k, (_, c) in enumerate(picks)])
        m = len(seg)
        out_ids[j, :m] = torch.cat([ids[r, c] for r, c in picks])
        out_pos[:, j, :m] = torch.cat([positions[:, r, c] for r, c in picks], 1)
        if "mm_token_type_ids" in inputs:
            out_types[j, :m] = torch.cat([inputs["mm_token_type_ids"][r, c] for r, c in picks])
        same = (seg[None, :] == -1) | (seg[None, :] == seg[:, None])
        allowed[j, :m, :m] = causal[:m, :m] & same
    out = _select_clips(inputs, order)
    out.update(input_ids=out_ids, position_ids=out_pos, attention_mask=allowed[:, None])
    if "mm_token_type_ids" in inputs:
        out["mm_token_type_ids"] = out_types
    return out


def _clip_owners(gen: Generation, rows: slice) -> list[int]:
    """The row (index into ``rows``) of each video clip of rows ``rows``, in their order."""
    start, stop, _ = rows.indices(len(gen.response_ids))
    if "pixel_values_videos" not in gen.prompt:
        return []
    owners = (
        gen.clip_rows.tolist()
        if gen.clip_rows is not None
        else clip_owners(gen.prompt, "pixel_values_videos")
    )
    return [r - start for r in owners if start <= r < stop]


def _prompt_holds_clip(inner: Any, inputs: dict[str, Any], lead: int) -> list[bool]:
    """[b] bool: the row's prompt (its first ``lead`` columns) holds a clip (its first one)."""
    if "mm_token_type_ids" in inputs:
        return (inputs["mm_token_type_ids"][:, :lead] != 0).any(1).tolist()
    media = [
        i
        for k in ("image_token_id", "video_token_id")
        if isinstance(i := getattr(inner.config, k, None), int)
    ]
    ids = inputs["input_ids"][:, :lead]
    return torch.isin(ids, torch.tensor(media, device=ids.device)).any(1).tolist()


def _select_clips(inputs: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """The vision inputs of clips ``order`` of ``inputs`` (indices into its clips), in that order."""
    out: dict[str, Any] = {}
    for pixels, grid in VISION_KEYS:
        if pixels in inputs:
            blocks = torch.split(inputs[pixels], inputs[grid].prod(-1).tolist())
            out[pixels] = torch.cat([blocks[c] for c in order])
            out[grid] = inputs[grid][order]
            for key in PER_CLIP_KEYS:
                if key in inputs:
                    out[key] = torch.as_tensor(inputs[key]).reshape(-1)[order]
    return out
