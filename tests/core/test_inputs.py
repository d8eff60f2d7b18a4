"""Model inputs: chat template + processor, frames and pixels budgeted before tokenising."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from vidrl import Sample, Session
from vidrl.config import VisionBudget
from vidrl.data.datasets import load_dataset
from vidrl.data.video import read_video
from vidrl.models.inputs import BudgetError, Geometry, prepare_batch, question_text
from vidrl.models.tiny import ARCHS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips_and_samples(synth_data):
    ds = load_dataset(synth_data)
    backend = Session().load().create("video_backend", "decord")
    samples = ds.samples[:3]
    return samples, [read_video(backend, str(ds.path(s.video)), fps=2.0, max_frames=16) for s in samples]


@pytest.mark.parametrize("factor", [28, 32])
def test_resize_matches_the_qwen_rule_within_the_budget(factor):
    """Qwen's smart_resize, except where it exceeds ``max_pixels`` (a side stuck at one factor):
    then the other side is cut to fit, and the short side stays."""
    g = Geometry(factor=factor, temporal=2)
    for h in (30, 57, 112, 224, 480, 1080):
        for w in (40, 112, 640, 1920):
            for lo, hi in ((factor**2, 128 * 128), (56 * 56, 448 * 448)):
                ours, qwen = g.resize(h, w, lo, hi), smart_resize(h, w, factor, lo, hi)
                if qwen[0] * qwen[1] <= hi:
                    assert ours == qwen, (h, w, lo, hi)
                else:  # the short side is at one factor in both; ours cuts the long one to fit
                    short = min(ours) == min(qwen) == factor
                    assert ours[0] * ours[1] <= hi and short, (h, w, lo, hi, ours, qwen)
    for h, w in ((4, 1000), (1000, 4), (8, 8), (3, 599), (30, 30000)):  # below a factor, very elongated
        for lo, hi in ((factor**2, 128 * 128), (factor**2, 4 * factor**2)):
            rh, rw = g.resize(h, w, lo, hi)
            assert rh % factor == rw % factor == 0 and factor**2 <= rh * rw <= hi, (h, w, hi, rh, rw)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("max_tokens", [4096, 180, 120])
def test_budget_holds_and_vision_tokens_are_never_cut(arch, max_tokens, tiny_model_dir, clips_and_samples):
    processor = AutoProcessor.from_pretrained(tiny_model_dir(arch))
    samples, clips = clips_and_samples
    batch, fitted = prepare_batch(processor, samples, clips, VisionBudget(max_prompt_tokens=max_tokens))
    lengths = batch["attention_mask"].sum(1)
    assert int(lengths.max()) <= max_tokens
    geometry = Geometry.of(processor)
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    for row, clip in zip(batch["input_ids"], fitted, strict=True):
        f, h, w = clip.pixels.shape[:3]
        assert h % geometry.factor == 0 and w % geometry.factor == 0 and f % geometry.temporal == 0
        assert int((row == video_id).sum()) == geometry.tokens(f, h, w)  # every vision token is there
    if max_tokens == 120:  # ~80 text tokens + 16 frames at full size cannot fit: every clip shrank
        for before, after in zip(clips, fitted, strict=True):
            assert after.pixels.numel() < before.pixels.numel()


def test_left_padding_mixed_text_and_video_and_forward(tiny_model_dir, clips_and_samples):
    path = tiny_model_dir("qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    samples, clips = clips_and_samples
    text_only = Sample(id="t", question="What is 2 + 2?", answer="4", task_type="numeric")
    batch, fitted = prepare_batch(processor, [samples[0], text_only], [clips[0], None])
    assert fitted[1] is None and batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][:, -1].all()
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_impossible_budget_says_by_how_much(tiny_model_dir, clips_and_samples):
    processor = AutoProcessor.from_pretrained(tiny_model_dir("qwen2_vl"))
    samples, clips = clips_and_samples
    with pytest.raises(
        BudgetError,
        match=r"needs \d+ tokens \(\d+ text\) at 2 frames of 28x28 px, more than max_prompt_tokens=20",
    ):
        prepare_batch(processor, samples[:1], clips[:1], VisionBudget(max_prompt_tokens=20))


def test_question_text_letters_options():
    s = Sample(id="x", question="Which?", answer="B", task_type="multiple_choice", options=("red", "blue"))
    assert question_text(s) == "Which?\nA. red\nB. blue"


def test_bad_budget():
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        VisionBudget(min_pixels=100, max_pixels=10)
