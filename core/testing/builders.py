"""Builders of the inputs components receive, for plugin tests: realistic shapes, fresh random
values from a seeded generator, odd sizes by default (groups of unequal size, a padded tail)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vidrl.plugin.session import Session
from vidrl.types import AugmentInput, Frames, LossInputs, Sample, ToolContext, VideoInfo


def group_ids(sizes: Sequence[int] = (3, 1, 4)) -> torch.Tensor:
    """[B] long: ``sizes[g]`` consecutive roll-outs of group g (B = sum(sizes))."""
    return torch.cat([torch.full((n,), g, dtype=torch.long) for g, n in enumerate(sizes)])


def loss_inputs(
    sizes: Sequence[int] = (3, 3),
    t: int = 7,
    *,
    per_token: bool = False,
    old: bool = True,
    ref: bool = True,
    entropy: bool = False,
    masked: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> LossInputs:
    """``LossInputs`` of B = sum(``sizes``) roll-outs of ``t`` tokens: log-probs in (−5, 0) with
    grad, old/reference log-probs near them (None when ``old`` / ``ref`` is False), advantages
    [B] (or [B, T] with ``per_token``), a mask with a random padded tail per row (all zeros with
    ``masked``), entropies in (0, 3) with ``entropy`` (0 on padding), and the step normalisers of
    this micro-batch alone."""
    g = torch.Generator().manual_seed(seed)
    ids = group_ids(sizes)
    b = len(ids)
    lp = (-5 * torch.rand(b, t, generator=g, dtype=dtype)).requires_grad_()
    near = lambda: lp.detach() + 0.1 * torch.randn(b, t, generator=g, dtype=dtype)  # noqa: E731
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).to(dtype) * (0 if masked else 1)
    adv = torch.randn((b, t) if per_token else (b,), generator=g, dtype=dtype)
    ent = 3 * torch.rand(b, t, generator=g, dtype=dtype) * mask if entropy else None
    return LossInputs(lp, adv, mask, ids, float(mask.sum()), float(b),
                      near() if old else None, near() if ref else None, entropies=ent)  # fmt: skip


def sample(task_type: str = "multiple_choice", i: int = 0, **fields: Any) -> Sample:
    """A plausible ``Sample`` of ``task_type`` (override any field by keyword)."""
    base: dict[str, Any] = {
        "multiple_choice": {
            "question": "Which colour appears?",
            "answer": "B",
            "options": ("red", "green", "blue", "grey"),
        },
        "numeric": {"question": "How many squares appear?", "answer": "3"},
        "temporal_grounding": {
            "question": "When does the square appear?",
            "answer": "2.0-4.5",
            "span": (2.0, 4.5),
        },
        "grounded_qa": {"question": "Which colour, and when?", "answer": "red", "span": (1.0, 3.0)},
        "free_form": {"question": "Describe the video.", "answer": "a red square moves"},
    }[task_type]
    return Sample(id=f"{task_type}-{i}", task_type=task_type, duration=8.0, **{**base, **fields})


def frames(num: int = 4, height: int = 28, width: int = 36, fps: float = 2.0, seed: int = 0) -> Frames:
    """``num`` random RGB frames [F, H, W, 3] uint8 of a video at ``fps``."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (num, height, width, 3), generator=g, dtype=torch.uint8)
    idx = torch.arange(num)
    return Frames(pixels, idx.double() / fps, idx, VideoInfo(num, fps, width, height))


def augment_input(group_means: Sequence[float] = (0.0, 0.5, 1.0), g: int = 4, seed: int = 0) -> AugmentInput:
    """An ``AugmentInput`` of P = len(``group_means``) multiple-choice prompts with clips, G
    roll-outs each whose rewards average to the given means; ``regenerate`` returns fixed texts
    and rewards of 0.5 (so an augmenter's hint path runs without a model)."""
    samples = [sample("multiple_choice", i) for i in range(len(group_means))]
    clips: list[Frames | None] = [frames(seed=seed + i) for i in range(len(samples))]
    rewards = [[m] * g for m in group_means]
    texts = [[f"<think>I see colour {k}.</think><answer>B</answer>" for k in range(g)] for _ in samples]

    def regenerate(
        ss: Sequence[Sample], cs: Sequence[Frames | None]
    ) -> tuple[list[list[str]], list[list[float]]]:
        return [["<think>First, look. Then, answer.</think><answer>B</answer>"] * g for _ in ss], [
            [0.5] * g for _ in ss
        ]

    return AugmentInput(samples, clips, list(group_means), texts, rewards, regenerate)


def tool_context(
    video_path: str | None = None, backend: Any = None, duration: float | None = 8.0
) -> ToolContext:
    """A ``ToolContext`` for a multiple-choice prompt (no video unless ``video_path`` is given)."""
    return ToolContext(sample("multiple_choice"), video_path, backend, duration)


def tiny_session(*plugins: object, only: bool = False) -> Session:
    """A loaded, strict ``Session`` with in-process ``plugins`` (objects or modules with
    ``@vidrl.hookimpl`` functions) added next to the installed ones (with ``only``: instead of
    them). Strict: a plugin that fails raises instead of being set aside."""
    names = [getattr(p, "__name__", None) or f"test_plugin_{i}" for i, p in enumerate(plugins)]
    s = Session(enable=names if only else None, strict=True)
    for p, name in zip(plugins, names, strict=True):
        s.add_plugin(p, name)
    return s.load()
