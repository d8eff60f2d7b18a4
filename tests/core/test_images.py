"""Images and mixed batches on the three tiny architectures: a batch of a video prompt, a
two-image prompt, a text-only prompt and an image + video prompt carries, for each row, exactly
its vision tokens and pixel rows; repeating and slicing it keeps each row's own; its log-probs
equal each prompt's alone; roll-outs run on it. And the feed loads images from files."""

import dataclasses

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vidrl.config import VisionBudget
from vidrl.data.datasets import load_dataset
from vidrl.data.video import VideoError
from vidrl.engine.feed import Clips
from vidrl.engine.rollout import given_responses, rollout, sequence_logprobs
from vidrl.models.generate import HFGenerate
from vidrl.models.inputs import Geometry, clip_owners, fit_image, prepare_batch, repeat_batch
from vidrl.testing import builders
from vidrl.types import ImagePixels, Sampling

ARCHS = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
TEXTS = ["<answer>A</answer>", "three", "a cat", "<answer>7</answer>"]


def _image(geometry, seed, h, w):
    g = torch.Generator().manual_seed(seed)
    return fit_image(
        torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8), geometry, VisionBudget()
    )


def _mixed(processor):
    """(samples, clips): video; two images; text only; an image and a video."""
    geo = Geometry.of(processor)
    two = (_image(geo, 1, 40, 60), _image(geo, 2, 56, 56))
    samples = [
        builders.sample("multiple_choice", 0),
        dataclasses.replace(builders.sample("numeric", 1), images=("a.png", "b.png")).with_extra(
            ImagePixels(two)
        ),
        builders.sample("free_form", 2),
        dataclasses.replace(builders.sample("numeric", 3), images=("c.png",)).with_extra(
            ImagePixels((_image(geo, 3, 30, 90),))
        ),
    ]
    return samples, [builders.frames(4, 56, 84, seed=0), None, None, builders.frames(4, 56, 56, seed=5)]


def _per_row(batch, pixels, grid, token_id, merge):
    """Per row: (its tokens of that kind, Σ its blocks' patches / merge², its pixel rows)."""
    owners = clip_owners(batch, pixels) if pixels in batch else []
    patches = batch[grid].prod(-1).tolist() if grid in batch else []
    out = []
    for r in range(batch["input_ids"].shape[0]):
        mine = [p for p, o in zip(patches, owners, strict=True) if o == r]
        out.append((int((batch["input_ids"][r] == token_id).sum()), sum(mine) // merge, sum(mine)))
    return out


def _prepared(tiny_model_dir, arch):
    """(model path, processor, samples, clips, the mixed batch) of architecture ``arch``."""
    path = tiny_model_dir(arch)
    processor = AutoProcessor.from_pretrained(path)
    samples, clips = _mixed(processor)
    return path, processor, samples, clips, prepare_batch(processor, samples, clips)[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_each_row_carries_its_own_vision_tokens_and_pixels(tiny_model_dir, arch):
    path, _, _, _, batch = _prepared(tiny_model_dir, arch)
    config = AutoModelForImageTextToText.from_pretrained(path).config
    merge = config.vision_config.spatial_merge_size**2
    images = _per_row(batch, "pixel_values", "image_grid_thw", config.image_token_id, merge)
    videos = _per_row(batch, "pixel_values_videos", "video_grid_thw", config.video_token_id, merge)
    assert all(tokens == expected for tokens, expected, _ in images + videos)  # tokens = patches / merge²
    assert [rows > 0 for _, _, rows in images] == [False, True, False, True]
    assert [rows > 0 for _, _, rows in videos] == [True, False, False, True]
    assert batch["pixel_values"].shape[0] == sum(r for _, _, r in images)  # every pixel row owned once
    twice = repeat_batch(batch, 2)  # each row's blocks follow it
    kinds = [("pixel_values", "image_grid_thw", config.image_token_id),
             ("pixel_values_videos", "video_grid_thw", config.video_token_id)]  # fmt: skip
    for pixels, grid, token in kinds:
        again = _per_row(twice, pixels, grid, token, merge)
        before = _per_row(batch, pixels, grid, token, merge)
        assert again == [x for x in before for _ in range(2)]


@pytest.mark.parametrize("arch", ARCHS)
def test_a_mixed_batch_scores_each_prompt_as_alone_and_rolls_out(tiny_model_dir, arch):
    path, processor, samples, clips, batch = _prepared(tiny_model_dir, arch)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float64)
    with torch.no_grad():
        lp = sequence_logprobs(model, given_responses(batch, processor.tokenizer, TEXTS))
        for i, sample in enumerate(samples):
            alone, _ = prepare_batch(processor, [sample], [clips[i]])
            one = given_responses(alone, processor.tokenizer, [TEXTS[i]])
            t = int(one.response_mask.sum())
            torch.testing.assert_close(lp[i, :t], sequence_logprobs(model, one)[0, :t], rtol=1e-9, atol=1e-9)
        eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        gen = rollout(HFGenerate().attach(model), batch, 2, Sampling(max_new_tokens=3), eos, 0)
        assert gen.response_ids.shape[0] == 8
        assert clip_owners(gen.prompt, "pixel_values") == [2, 2, 3, 3, 6, 7]  # rows 1 and 3, twice each
        assert torch.isfinite(sequence_logprobs(model, gen, slice(3, 7))).all()


def test_the_feed_loads_images_and_names_one_that_does_not_read(tmp_path, tiny_model_dir):
    Image.new("RGB", (64, 40), (200, 10, 10)).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [{"id": "ok", "question": "q", "answer": "1", "images": ["a.png", "a.png"]},
            {"id": "bad", "question": "q", "answer": "1", "images": ["broken.png"]}]  # fmt: skip
    ds = load_dataset(rows, root=tmp_path)
    processor = AutoProcessor.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    clips, geo = Clips(ds, None, vidrl_data_config()), Geometry.of(processor)
    sample, clip = clips.load(ds[0], geo)
    pixels = sample.extra(ImagePixels).pixels
    assert clip is None and len(pixels) == 2 and pixels[0].shape[0] % geo.factor == 0
    assert pixels[0][0, 0].tolist() == [200, 10, 10]
    with pytest.raises(VideoError, match=r"sample 'bad': image 'broken.png' does not read"):
        clips.load(ds[1], geo)


def vidrl_data_config():
    from vidrl.config import DataConfig

    return DataConfig()


def test_a_backend_is_handed_each_prompts_fitted_images(tiny_model_dir):
    from vidrl.models.inputs import FITTED_IMAGES, sample_images

    _, _, samples, _, batch = _prepared(tiny_model_dir, "qwen2_5_vl")
    batch[FITTED_IMAGES] = [sample_images(s) for s in samples]  # as the feeds set it
    seen = []

    class Recording(HFGenerate):
        def generate(self, request):
            seen.append(request)
            return torch.zeros(request.num_prompts * request.group_size, 1, dtype=torch.long)

    rollout(Recording(), batch, 2, Sampling(max_new_tokens=1), 0, 0)
    images = seen[0].images
    assert [len(x) for x in images] == [0, 2, 0, 1] and images[1][0] is samples[1].extra(ImagePixels).pixels[
        0
    ]
