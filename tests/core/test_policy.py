"""The policy's precision and gradient checkpointing: checkpointed gradients equal plain ones with
a frozen vision tower; bf16-mixed keeps float32 master weights, so small updates are not lost."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

import vidrl
from vidrl.engine.rollout import rollout, sequence_logprobs
from vidrl.models.generate import HFGenerate
from vidrl.models.policy import enable_gradient_checkpointing, freeze, resolve_precision
from vidrl.types import Sampling

pytestmark = pytest.mark.slow


def _grads(path, gen, checkpointing):
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    freeze(model, ("visual",))
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    mlp = next(m for n, m in model.named_modules() if n.endswith("language_model.layers.0.mlp"))
    runs, forward = [], mlp.forward
    mlp.forward = lambda *a, **k: runs.append(1) or forward(*a, **k)  # hooks do not see the recompute
    lp = sequence_logprobs(model, gen)
    (lp * gen.response_mask).sum().backward()
    return lp.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}, len(runs)


def test_gradient_checkpointing_gives_the_same_gradients_with_a_frozen_vision_tower(video_prompts):
    path, processor, batch, _ = video_prompts
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    backend = HFGenerate().attach(model)
    gen = rollout(backend, batch, 2, Sampling(max_new_tokens=6), eos, processor.tokenizer.pad_token_id)
    lp, plain, runs = _grads(path, gen, checkpointing=False)
    lp_ckpt, ckpt, runs_ckpt = _grads(path, gen, checkpointing=True)
    assert (runs, runs_ckpt) == (1, 2)  # checkpointed: the layer's MLP runs again in the backward pass
    assert not any("visual" in n for n in ckpt)
    torch.testing.assert_close(lp_ckpt, lp, rtol=1e-6, atol=1e-6)
    assert plain.keys() == ckpt.keys() and all(g is not None for g in ckpt.values())
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_precision_auto_and_the_pure_bf16_refusal():
    assert resolve_precision("auto") == ("bf16-mixed" if torch.cuda.is_available() else "fp32")
    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(vidrl.ConfigError, match="bf16-pure' needs an optimizer that compensates"):
        vidrl.load_config({"model": {"precision": "bf16-pure"}})
    with pytest.raises(vidrl.ConfigError, match=r"model.dtype: moved to model.precision"):
        vidrl.load_config({"model": {"dtype": "bfloat16"}})


def test_lora_trains_the_language_model_adapters_and_the_reference_is_the_base(tiny_model_dir):
    from vidrl.config import LoraConfig, ModelConfig
    from vidrl.models.policy import AdapterDisabled, trainable_model

    path = tiny_model_dir("qwen2_5_vl")
    torch.manual_seed(0)
    model = trainable_model(path, ModelConfig(lora=LoraConfig(r=4)))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n and "language_model" in n for n in trained)
    with torch.no_grad():  # make the adapters do something (peft starts them at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ids = torch.randint(10, 300, (2, 9))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    plain = AutoModelForImageTextToText.from_pretrained(path)
    with torch.no_grad():
        adapted, reference, base = (m(**inputs).logits for m in (model, AdapterDisabled(model), plain))
    torch.testing.assert_close(reference, base, rtol=1e-5, atol=1e-5)  # adapters off: the base model
    assert (adapted - base).abs().max() > 1e-3  # and on: not the base
