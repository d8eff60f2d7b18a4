"""Model inputs: prompts through the model's own chat template and processor, with frames and
pixels budgeted *before* tokenising so that a prompt never has to be cut through its vision tokens.

Frames are resized here to the processor's patch grid (``smart_resize`` with the budget's pixel
bounds) and handed over with ``do_resize=False``, so the number of vision tokens is known exactly:
per clip (F / temporal_patch) · (H / factor) · (W / factor), factor = patch · merge. When text +
vision tokens exceed ``max_prompt_tokens``, frames are halved (uniformly, down to ``min_frames``),
then pixels; if even that does not fit, the error says by how much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vidrl.config import VisionBudget
from vidrl.data.video import VideoError
from vidrl.errors import VidrlError
from vidrl.types import Frames, ImagePixels, Sample

LETTERS = "ABCDEFGH"
#: per-clip tensors, with the grid that says how many flattened patch rows each clip owns
VISION_KEYS = (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw"))
#: per vision key, the prompt-batch entry [C] long holding the row of each of its clips (images),
#: present only when a row owns none (a text-only or image-only prompt) or several (several
#: images); absent, each row owns one. Not a model input: pass a batch that may hold it to a
#: model through ``model_inputs``.
OWNER_KEYS = {"pixel_values_videos": "video_rows", "pixel_values": "image_rows"}
PER_CLIP_KEYS = ("second_per_grid_ts",)
#: prompt-batch keys with a column per prompt token ([b, L]): trimmed together
TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
#: the prompt-batch entry (not a tensor) with each prompt's clip as fitted (``Frames`` or None),
#: set by the engine's feeds for roll-out backends (``RolloutRequest.frames``)
FITTED_FRAMES = "fitted_frames"
#: likewise each prompt's images as fitted (a tuple of [H, W, 3] uint8; ``RolloutRequest.images``)
FITTED_IMAGES = "fitted_images"


class BudgetError(VidrlError):
    """A prompt does not fit ``max_prompt_tokens`` even at the smallest frames and pixels."""


@dataclass(frozen=True)
class Geometry:
    """The vision encoder's grid, read from the processor: spatial ``factor`` (patch · merge) and
    ``temporal`` patch (frames per temporal token)."""

    factor: int
    temporal: int

    @classmethod
    def of(cls, processor: Any) -> Geometry:
        vp = processor.video_processor
        return cls(factor=vp.patch_size * vp.merge_size, temporal=vp.temporal_patch_size)

    def resize(self, height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
        """Qwen's smart_resize: both sides multiples of factor, area within the bounds, aspect kept;
        where a side cannot go below one factor (a very elongated frame), the other is cut so that
        the area stays within ``max_pixels`` (Qwen's own would exceed it)."""
        f = self.factor
        h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
        if h * w > max_pixels:
            beta = math.sqrt(height * width / max_pixels)
            h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
            if h * w > max_pixels and h == f:  # the short side is at its floor of one factor
                w = max(f, max_pixels // h // f * f)
            elif h * w > max_pixels:
                h = max(f, max_pixels // w // f * f)
        elif h * w < min_pixels:
            beta = math.sqrt(min_pixels / (height * width))
            h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return h, w

    def tokens(self, frames: int, height: int, width: int) -> int:
        return math.ceil(frames / self.temporal) * (height // self.factor) * (width // self.factor)


def question_text(sample: Sample) -> str:
    """The question with lettered options for multiple choice."""
    if not sample.options:
        return sample.question
    options = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(sample.options))
    return f"{sample.question}\n{options}"


def messages_for(
    sample: Sample, has_video: bool, system: str | None = None, images: int = 0
) -> list[dict[str, Any]]:
    """The chat of one prompt: the ``images`` images, then the video, then the question."""
    content: list[dict[str, Any]] = [{"type": "image"}] * images + ([{"type": "video"}] if has_video else [])
    content.append({"type": "text", "text": question_text(sample)})
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": content}]


def _subsample(frames: Frames, n: int) -> Frames:
    keep = torch.linspace(0, len(frames.indices) - 1, n).round().long()
    return Frames(frames.pixels[keep], frames.times[keep], frames.indices[keep], frames.info)


def _resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[F, H, W, 3] uint8 → [F, height, width, 3] uint8 (bicubic, as the processors resize)."""
    if pixels.shape[1:3] == (height, width):
        return pixels
    x = pixels.permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


#: the most elongated frame vidrl resizes (Qwen's smart_resize refuses more)
MAX_ASPECT = 200


def fit_pixels(frames: Frames, geometry: Geometry, budget: VisionBudget, path: str = "") -> Frames:
    """``frames`` resized to the largest size on the patch grid the budget allows per frame (what
    ``fit_clip`` resizes them to first), so that a cache holds no more than the model sees. A frame
    more elongated than ``MAX_ASPECT``:1 is a ``VideoError`` with its size."""
    rh, rw = _fitted_size(*frames.pixels.shape[1:3], geometry, budget, path)
    return Frames(_resize(frames.pixels, rh, rw), frames.times, frames.indices, frames.info)


def _fitted_size(h: int, w: int, geometry: Geometry, budget: VisionBudget, path: str) -> tuple[int, int]:
    """The largest (height, width) on the patch grid the budget allows a h × w frame; a frame
    more elongated than ``MAX_ASPECT``:1 is a ``VideoError``."""
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise VideoError(f"{path}: frames of {w}x{h} px are more elongated than {MAX_ASPECT}:1")
    return geometry.resize(h, w, budget.min_pixels, budget.max_pixels)


def fit_image(pixels: torch.Tensor, geometry: Geometry, budget: VisionBudget, path: str = "") -> torch.Tensor:
    """An image [H, W, 3] uint8 resized on the patch grid within the budget's pixel bounds (an image
    is one frame, its tokens (H / factor) · (W / factor))."""
    rh, rw = _fitted_size(*pixels.shape[:2], geometry, budget, path)
    return _resize(pixels[None], rh, rw)[0]


def sample_images(sample: Sample) -> tuple[torch.Tensor, ...]:
    """The fitted images of ``sample`` (its stashed ``ImagePixels``); none without images."""
    if not sample.images:
        return ()
    loaded = sample.extra(ImagePixels)
    if loaded is None or len(loaded.pixels) != len(sample.images):
        raise VidrlError(f"sample {sample.id!r} has {len(sample.images)} image(s) that were not loaded: "
                         "the engine's feeds load them (vidrl.engine.feed.Clips.images)")  # fmt: skip
    return loaded.pixels


def fit_clip(frames: Frames, geometry: Geometry, budget: VisionBudget, text_tokens: int) -> Frames:
    """Halve frames, then pixels, until text + vision tokens fit; return resized frames."""
    max_pixels = budget.max_pixels
    h, w = frames.pixels.shape[1:3]
    while True:
        rh, rw = geometry.resize(h, w, budget.min_pixels, max_pixels)
        need = text_tokens + geometry.tokens(len(frames.indices), rh, rw)
        if need <= budget.max_prompt_tokens:
            return Frames(_resize(frames.pixels, rh, rw), frames.times, frames.indices, frames.info)
        n = len(frames.indices)
        smaller = max(budget.min_frames, (n // 2 // geometry.temporal) * geometry.temporal)
        if smaller < n:
            frames = _subsample(frames, smaller)
        elif rh * rw > geometry.factor**2 and max_pixels > budget.min_pixels:
            max_pixels = max(budget.min_pixels, max_pixels // 2)
        else:
            raise BudgetError(
                f"the prompt needs {need} tokens ({text_tokens} text) at {n} frames of {rh}x{rw} px, "
                f"more than max_prompt_tokens={budget.max_prompt_tokens}"
            )


def video_metadata(frames: Frames) -> dict[str, Any]:
    """What the processors read: true frame indices and fps (Qwen3-VL prints index / fps as time
    stamps), and a frame total chosen so that their ``sampled_fps`` is the clip's real rate."""
    total = max(len(frames.indices), round(len(frames.indices) * frames.info.fps / frames.sampled_fps))
    return {"total_num_frames": total, "fps": frames.info.fps, "frames_indices": frames.indices.tolist()}


def prepare_batch(
    processor: Any,
    samples: Sequence[Sample],
    clips: Sequence[Frames | None],
    budget: VisionBudget = VisionBudget(),
    system: str | None = None,
) -> tuple[Any, list[Frames | None]]:
    """Tokenised, left-padded prompts with vision inputs for ``samples`` (``clips[i]`` is the
    decoded video of ``samples[i]`` or None; its images are its stashed ``ImagePixels``). A batch
    may mix video, image and text-only prompts; where a row holds none or several clips or
    images, ``video_rows`` and ``image_rows`` name the row of each (``OWNER_KEYS``). Returns
    (BatchFeature, the clips as fitted).

    Text the processor adds per clip (Qwen3-VL's time stamps) is learnt from the first pass: a
    prompt over budget is refitted with that overhead, at most three times."""
    geometry = Geometry.of(processor)
    images = [sample_images(s) for s in samples]
    texts = [
        processor.apply_chat_template(
            messages_for(s, c is not None, system, len(p)), add_generation_prompt=True, tokenize=False
        )
        for s, c, p in zip(samples, clips, images, strict=True)
    ]
    text_tokens = [_tokens(processor, t) + sum(geometry.tokens(1, *x.shape[:2]) for x in p)
                   for t, p in zip(texts, images, strict=True)]  # fmt: skip
    overhead = [0] * len(samples)
    for _ in range(4):
        fitted = [
            None if c is None else fit_clip(c, geometry, budget, n + extra)
            for c, n, extra in zip(clips, text_tokens, overhead, strict=True)
        ]
        batch = run_processor(processor, texts, fitted, images)
        lengths = batch["attention_mask"].sum(1).tolist()
        over = [max(0, n - budget.max_prompt_tokens) for n in lengths]
        if not any(over):
            return _with_owners(batch, fitted, images), fitted
        overhead = [o + x for o, x in zip(overhead, over, strict=True)]
    raise BudgetError(f"prompts came to {max(lengths)} tokens > max_prompt_tokens={budget.max_prompt_tokens}")


def _tokens(processor: Any, text: str) -> int:
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])


def run_processor(
    processor: Any, texts: list[str], clips: list[Frames | None], images: Sequence[Sequence[Any]] = (),
) -> Any:  # fmt: skip
    """The processor on rendered ``texts``, their fitted clips and their fitted images [row][k]
    (already on the patch grid: no resizing or frame sampling inside)."""
    videos = [c for c in clips if c is not None]
    pictures = [x.numpy() for row in images for x in row]
    kwargs: dict[str, Any] = {"padding": True, "padding_side": "left", "return_tensors": "pt"}
    if videos:
        kwargs["videos"] = [c.pixels.numpy() for c in videos]
        kwargs["video_metadata"] = [video_metadata(c) for c in videos]
        kwargs.update(do_sample_frames=False)
    if pictures:
        kwargs["images"] = pictures
    if videos or pictures:
        kwargs["do_resize"] = False
    return processor(text=texts, **kwargs)


def _with_owners(batch: Any, clips: Sequence[Frames | None], images: Sequence[Sequence[torch.Tensor]]) -> Any:
    """``batch`` with the row of each clip (``video_rows``) and image (``image_rows``), where a
    row holds none or several of them (``OWNER_KEYS``)."""
    every = list(range(len(clips)))
    videos = [r for r, c in enumerate(clips) if c is not None]
    pictures = [r for r, p in enumerate(images) for _ in p]
    for key, rows in (("video_rows", videos), ("image_rows", pictures)):
        if rows and rows != every:  # one per row is what the absence of owners means
            batch[key] = torch.tensor(rows, dtype=torch.long)
    return batch


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model inputs of a processor batch: its tensors, per-clip lists as tensors (a processor
    may return ``second_per_grid_ts`` as a list), nothing else (``FITTED_FRAMES``, the owners)."""
    owners = set(OWNER_KEYS.values())
    out = {k: v for k, v in batch.items() if torch.is_tensor(v) and k not in owners}
    for key in PER_CLIP_KEYS:
        if key in batch and not torch.is_tensor(batch[key]):
            out[key] = torch.tensor(batch[key])
    return out


def clip_owners(batch: Mapping[str, Any], pixels: str) -> list[int]:
    """The row of each clip (image) of vision key ``pixels`` in ``batch``, in the batch's order."""
    grid = dict(VISION_KEYS)[pixels]
    owners = batch.get(OWNER_KEYS[pixels])
    return owners.tolist() if owners is not None else list(range(len(batch[grid])))


def repeat_batch(batch: Mapping[str, Any], g: int) -> dict[str, Any]:
    """Each prompt of a processor batch repeated ``g`` times in place ([P, ...] → [P·g, ...]):
    its vision blocks (any number per row, of either kind) and their owners with it."""
    token_rows = batch["input_ids"].shape[0]
    out = {
        k: v.repeat_interleave(g, dim=0)
        for k, v in model_inputs(batch).items()
        if v.shape[:1] == (token_rows,)
    }
    for pixels, grid in VISION_KEYS:
        if pixels in batch:
            owners, order, rows = clip_owners(batch, pixels), [], []
            for r in range(token_rows):  # row r's clips, once for each of its g copies
                mine = [c for c, o in enumerate(owners) if o == r]
                for j in range(g):
                    order += mine
                    rows += [r * g + j] * len(mine)
            blocks = torch.split(batch[pixels], batch[grid].prod(-1).tolist())
            out[pixels] = torch.cat([blocks[c] for c in order]) if order else batch[pixels][:0]
            out[grid] = batch[grid][order]
            if rows != list(range(token_rows * g)):  # not one per row: say whose each is
                out[OWNER_KEYS[pixels]] = torch.tensor(rows, dtype=torch.long)
            for key in PER_CLIP_KEYS:
                if key in batch and pixels == "pixel_values_videos":
                    out[key] = torch.as_tensor(batch[key]).reshape(-1)[order]
    return out
