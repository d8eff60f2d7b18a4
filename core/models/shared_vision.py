"""Each clip encoded once per forward, however many rows carry it.

A group's G roll-outs share their prompt's clip, and the batch of a roll-out, log-prob or update
forward repeats it G times: the vision tower would encode G copies. ``share_identical_clips``
wraps the tower's forward so that consecutive identical clips (same grid, equal pixels) are
encoded once and the output rows repeated. Clips never attend to each other in the Qwen-VL
towers (attention is restricted to each clip's own frames), so the result equals encoding every
copy; a trainable tower gets the sum of the copies' gradients, through the repetition.

Shapes (the towers' calling convention): ``hidden_states`` [Σ patches, C·t·p·p] with clip i's
``grid_thw[i] = (t, h, w)`` owning t·h·w rows in order; the output's per-token tensors (after
the m×m merger: the embeddings, deepstack features too) have Σ t·h·w / m² rows, in clip order.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch


def share_identical_clips(model: Any) -> bool:
    """Wrap ``model``'s vision tower (``model.model.visual`` or ``model.visual``) in place;
    returns whether it has one. Idempotent."""
    base = getattr(model, "model", model)
    visual = getattr(base, "visual", None)
    if visual is None or getattr(visual, "_vidrl_shared", False):
        return visual is not None
    visual.forward = types.MethodType(_shared_forward, visual)  # a copy of the model rebinds it
    visual._vidrl_shared = True
    return True


def _shared_forward(self: Any, hidden_states: torch.Tensor, grid_thw: torch.Tensor, **kwargs: Any) -> Any:
    """The tower's own forward on the distinct clips only, its per-token outputs repeated."""
    inner = functools.partial(type(self).forward, self)
    patches = grid_thw.prod(-1).tolist()
    if any(torch.is_tensor(v) for v in kwargs.values()):  # values precomputed for the full grid
        return inner(hidden_states, grid_thw, **kwargs)
    source = _unique_clips(hidden_states, grid_thw, patches)
    if len(set(source)) == len(source):
        return inner(hidden_states, grid_thw, **kwargs)
    keep = sorted(set(source))
    clips = torch.split(hidden_states, patches)
    out = inner(torch.cat([clips[i] for i in keep]), grid_thw[keep], **kwargs)
    merge = int(getattr(self, "spatial_merge_size", 1)) ** 2
    rows, index = _repeat_rows([patches[i] // merge for i in keep], [keep.index(i) for i in source])
    return _repeat(out, rows, index)


def _unique_clips(pixels: torch.Tensor, grid_thw: torch.Tensor, patches: list[int]) -> list[int]:
    """For each clip, the index of the first clip identical to it (same grid, equal pixels):
    compared with each distinct clip of the same grid before it (a group's copies are
    consecutive in roll-outs, interleaved with observation clips in tool roll-outs)."""
    clips = torch.split(pixels, patches)
    source, seen = [], {}
    for i, clip in enumerate(clips):
        same = seen.setdefault(tuple(grid_thw[i].tolist()), [])
        match = next((j for j in same if torch.equal(clips[j], clip)), None)
        if match is None:
            same.append(i)
        source.append(i if match is None else match)
    return source


def _repeat_rows(sizes: list[int], order: list[int]) -> tuple[int, torch.Tensor]:
    """(the unique clips' rows Σ sizes, the row index [Σ sizes over ``order``] that lays their
    rows out again in ``order``)."""
    starts = torch.tensor([0, *sizes]).cumsum(0)
    index = torch.cat([torch.arange(int(starts[u]), int(starts[u + 1])) for u in order])
    return int(starts[-1]), index


def _repeat(out: Any, rows: int, index: torch.Tensor) -> Any:
    """``out`` with every tensor of ``rows`` rows (the per-token outputs: merged embeddings,
    deepstack features) re-indexed by ``index``, in tensors, tuples, lists and ``ModelOutput``s.
    Per-patch outputs (``last_hidden_state``, in the tower's own window order) stay as computed,
    for the unique clips only: nothing downstream reads them."""
    if isinstance(out, torch.Tensor):
        return out.index_select(0, index.to(out.device)) if out.dim() and out.shape[0] == rows else out
    if isinstance(out, (list, tuple)):
        return type(out)(_repeat(x, rows, index) for x in out)
    if hasattr(out, "keys"):  # a ModelOutput (or a dict)
        for key in list(out.keys()):
            if key != "last_hidden_state":
                out[key] = _repeat(out[key], rows, index)
        return out
    return out
