"""Roll-out backends: the request a backend receives, ``hf_generate`` as a registered component,
and its prompt sharing (each prompt prefilled once, KV cache copied to its G samples) giving the
same tokens as G prefills on every supported architecture."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import vidrl
from vidrl import ConfigError, load_config
from vidrl.models.inputs import prepare_batch
from vidrl.types import Frames, Sample, VideoInfo

G = 3


def _clip(frames: int, seed: int, fps: float = 2.0) -> Frames:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (frames, 56, 56, 3), generator=g, dtype=torch.uint8)
    return Frames(pixels, torch.arange(frames) / fps, torch.arange(frames), VideoInfo(frames, fps, 56, 56))


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def arch_prompts(request, tiny_model_dir):
    """(model, tokenizer, batch): two prompts of different lengths (so one is left-padded), with
    clips of 8 and 6 frames at 0.05 fps (40 s per temporal patch: M-RoPE's time
    axis runs far ahead of the token count, which a wrong offset after the prefill would show)."""
    path = tiny_model_dir(request.param)
    processor = AutoProcessor.from_pretrained(path)
    samples = [
        Sample(id="a", question="What colour is it?", answer="A"),
        Sample(id="b", question="How many squares cross the frame from the left, in all?", answer="3"),
    ]
    batch, _ = prepare_batch(processor, samples, [_clip(8, 0, fps=0.05), _clip(6, 1, fps=0.05)])
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return model, processor.tokenizer, {k: v for k, v in batch.items() if torch.is_tensor(v)}


def _request(tok, batch, sampling):
    return vidrl.RolloutRequest(
        batch, G, sampling, (tok.convert_tokens_to_ids("<|im_end|>"),), tok.pad_token_id
    )


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sharing_the_prompt_samples_the_same_tokens_as_prefilling_every_copy(arch_prompts, temperature):
    model, tok, batch = arch_prompts
    request = _request(tok, batch, vidrl.Sampling(temperature=temperature, max_new_tokens=10))
    out = {}
    for share in (False, True):
        backend = vidrl.HFGenerate(vidrl.HFGenerate.Config(share_prompt=share)).attach(model)
        torch.manual_seed(7)
        out[share] = backend.generate(request)
    assert out[True].shape == (2 * G, out[True].shape[1]) and out[True].shape[1] <= 10
    assert torch.equal(out[True], out[False])


def test_sharing_the_prompt_decodes_with_the_same_logits(arch_prompts):
    """The next-token logits of every decoding step equal those of G prefills (sensitive to the
    M-RoPE positions the decoding continues from, which the tokens of a random tiny model may
    not be)."""
    model, tok, batch = arch_prompts
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    how = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, "max_new_tokens": 5,
           "eos_token_id": [eos], "pad_token_id": tok.pad_token_id, "min_new_tokens": 5,
           "output_logits": True, "return_dict_in_generate": True}  # fmt: skip
    logits = {}
    for share in (False, True):
        backend = vidrl.HFGenerate(vidrl.HFGenerate.Config(share_prompt=share)).attach(model)
        with torch.no_grad():
            logits[share] = torch.stack(backend._generate(batch, G, how).logits)  # [steps, P·G, V]
    torch.testing.assert_close(logits[True], logits[False], atol=1e-4, rtol=1e-4)


def test_sharing_the_prompt_prefills_each_prompt_once(arch_prompts):
    """The language model's first forward holds P rows, not P·G; every later one is one token."""
    model, tok, batch = arch_prompts
    shapes = []
    lm = model.model.language_model
    handle = lm.register_forward_pre_hook(
        lambda mod, args, kwargs: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    try:
        vidrl.HFGenerate().attach(model).generate(_request(tok, batch, vidrl.Sampling(0.0, max_new_tokens=4)))
    finally:
        handle.remove()
    p, length = batch["input_ids"].shape
    assert shapes[0] == (p, length - 1)  # every prompt token but the last, once per prompt
    assert shapes[1] == (p * G, 1) and all(s == (p * G, 1) for s in shapes[1:])


def test_samples_come_from_the_policy_not_the_checkpoints_generation_defaults(arch_prompts):
    """A checkpoint's generation_config.json (Qwen2.5-VL Instruct's: top_k 1, top_p 0.001,
    temperature 0.1, repetition_penalty 1.05) must not shape roll-outs: with top_k 1 a group's
    samples would all be equal."""
    model, tok, batch = arch_prompts
    saved = model.generation_config.to_dict()
    model.generation_config.update(
        top_k=1, top_p=0.001, temperature=0.1, repetition_penalty=1.05, do_sample=True
    )
    try:
        torch.manual_seed(0)
        ids = vidrl.HFGenerate().attach(model).generate(_request(tok, batch, vidrl.Sampling(1.0, 1.0, 8)))
    finally:
        model.generation_config.update(**saved)
    assert (
        len({tuple(row.tolist()) for row in ids[:G]}) > 1
        and len({tuple(row.tolist()) for row in ids[G:]}) > 1
    )


def test_a_static_cache_decodes_the_same_greedy_tokens(arch_prompts):
    model, tok, batch = arch_prompts
    request = _request(tok, batch, vidrl.Sampling(temperature=0.0, max_new_tokens=6))
    dynamic = vidrl.HFGenerate().attach(model).generate(request)
    static = vidrl.HFGenerate(vidrl.HFGenerate.Config(static_cache=True)).attach(model).generate(request)
    assert torch.equal(dynamic, static)


def test_a_request_hands_over_each_prompt_without_its_padding():
    batch = {
        "input_ids": torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]]),
        "attention_mask": torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]),
    }
    request = vidrl.RolloutRequest(batch, 2, vidrl.Sampling(), (3,), 0)
    assert request.num_prompts == 2 and request.prompt_ids() == [[5, 6], [7, 8, 9, 10]]
    with pytest.raises(ValueError, match="group_size"):
        vidrl.RolloutRequest(batch, 0, vidrl.Sampling(), (3,), 0)
    with pytest.raises(ValueError, match="stop id"):
        vidrl.RolloutRequest(batch, 2, vidrl.Sampling(), (), 0)
    with pytest.raises(ValueError, match="3 frames entries for 2 prompts"):
        vidrl.RolloutRequest(batch, 2, vidrl.Sampling(), (3,), 0, frames=[None] * 3)


def test_the_run_config_names_the_backend_and_validates_its_options():
    config, session = load_config({})
    assert config.rollout is None and "hf_generate" in session.registry("rollout_backend")
    config, session = load_config({"rollout": {"name": "hf_generate", "options": {"share_prompt": False}}})
    backend = session.create("rollout_backend", config.rollout.name, config.rollout.options)
    assert isinstance(backend, vidrl.HFGenerate) and backend.config.share_prompt is False
    with pytest.raises(ConfigError, match="unknown rollout_backend 'vllm'"):
        load_config({"rollout": "vllm"})
    with pytest.raises(ConfigError, match="share_prompts"):
        load_config({"rollout": {"name": "hf_generate", "options": {"share_prompts": True}}})
