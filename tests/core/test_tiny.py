"""Tiny real models: built offline, loaded through the Auto classes like a downloaded checkpoint,
fed by their processors with decoded synthetic video, forward and generate."""

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vidrl import Session
from vidrl.data.video import read_video
from vidrl.models.tiny import ARCHS, build_tiny_model, build_tokenizer

pytestmark = pytest.mark.slow


def test_tokenizer_is_byte_level_with_the_qwen_special_tokens():
    tok = build_tokenizer()
    for t in ("<|im_start|>", "<|im_end|>", "<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<think>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    text = "Ünïcode ✓ 3.125 seconds <answer>B</answer>"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is unknown


@pytest.mark.parametrize("arch", ARCHS)
def test_build_load_process_forward_generate(arch, tmp_path, synth_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any hub access would fail loudly
    path = build_tiny_model(arch, tmp_path / arch)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    assert model.config.model_type == arch
    row = json.loads(synth_data.read_text().splitlines()[0])
    backend = Session().load().create("video_backend", "decord")
    frames = read_video(backend, str(synth_data.parent / row["video"]), fps=1.0, max_frames=8)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": row["question"]}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    meta = {"total_num_frames": len(frames.indices), "fps": frames.sampled_fps,
            "frames_indices": list(range(len(frames.indices)))}  # fmt: skip
    inputs = processor(text=[text], videos=[frames.pixels.numpy()], video_metadata=[meta],
                       do_sample_frames=False, return_tensors="pt")  # fmt: skip
    video_token = model.config.video_token_id
    assert (inputs["input_ids"] == video_token).sum() > 0
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
    out = model.generate(
        **inputs, max_new_tokens=4, do_sample=True, pad_token_id=processor.tokenizer.pad_token_id
    )
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_the_small_size_is_a_wider_deeper_qwen2_5_vl_that_runs(tmp_path):
    """``size: small`` (the comparisons' base models): 3 layers of width 128, a 4-block tower,
    M-RoPE sections summing to half the head size; one forward on an image runs."""
    path = build_tiny_model("qwen2_5_vl", tmp_path / "small", size="small")
    model = AutoModelForImageTextToText.from_pretrained(path)
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, vision.depth, vision.out_hidden_size) == (
        128,
        3,
        4,
        128,
    )
    head = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head // 2
    processor = AutoProcessor.from_pretrained(path)
    image = torch.randint(0, 256, (56, 56, 3), dtype=torch.uint8).numpy()
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    assert torch.isfinite(model(**inputs).logits).all()
    with pytest.raises(ValueError, match="small \\(qwen2_5_vl only\\)"):
        build_tiny_model("qwen3_vl", tmp_path / "no", size="small")
