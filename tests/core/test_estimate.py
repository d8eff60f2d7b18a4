"""The memory estimate against a measured small case: the parts counted from the model (weights,
gradients, AdamW state) equal the bytes a real tiny model holds after one optimizer step, with
and without LoRA; the CLI prints the table."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vidrl.cli import main
from vidrl.config import LoraConfig, ModelConfig
from vidrl.models.estimate import GIB, counts, meta_model, per_gpu
from vidrl.models.policy import trainable_model


def _nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("lora", [None, LoraConfig(r=4)])
def test_counted_parts_equal_a_measured_tiny_model(tiny_model_dir, lora):
    path = tiny_model_dir("qwen2_5_vl")
    config = ModelConfig(path=str(path), freeze=() if lora else ("visual",), lora=lora)
    model = trainable_model(path, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable)
    ids = torch.randint(10, 300, (2, 7))
    model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().sum().backward()
    opt.step()
    measured = {
        "weights": _nbytes(model.parameters()),
        "gradients": _nbytes(p.grad for p in trainable),
        "optimizer": _nbytes(v for s in opt.state.values() for v in s.values() if v.dim() > 0),
    }
    c = counts(meta_model(AutoModelForImageTextToText.from_pretrained(path).config, config))
    est = per_gpu(c, precision="fp32", reference=False, lora=lora is not None, checkpointing=False, shards=1,
                  micro_tokens=64, rollout_tokens=64)  # fmt: skip
    assert {k: est[k] for k in measured} == measured
    halves = per_gpu(c, precision="fp32", reference=True, lora=False, checkpointing=False, shards=2,
                     micro_tokens=64, rollout_tokens=64)  # fmt: skip
    assert halves["optimizer"] == measured["optimizer"] / 2 and halves["reference"] == c.total * 4 / 2


def test_checkpointing_and_bf16_lower_the_activations():
    c = counts(meta_model(_sized("qwen2_5_vl_3b"), ModelConfig(freeze=("visual",))))
    base = {"reference": True, "lora": False, "shards": 1, "micro_tokens": 8192, "rollout_tokens": 8192}
    fp32 = per_gpu(c, precision="fp32", checkpointing=False, **base)["activations"]
    bf16 = per_gpu(c, precision="bf16-mixed", checkpointing=False, **base)["activations"]
    ckpt = per_gpu(c, precision="bf16-mixed", checkpointing=True, **base)["activations"]
    assert fp32 == 2 * bf16 and ckpt < bf16 / 10
    assert 3.0 < c.trainable / 1e9 < 3.1  # the 3B's language model (the vision tower frozen)


def _sized(size):
    from vidrl.models.sizes import sized_config
    from vidrl.models.tiny import build_tokenizer

    return sized_config(size, build_tokenizer())


def test_vidrl_estimate_prints_the_table(capsys):
    cfg = "examples/configs/grpo.yaml"
    assert (
        main(["estimate", cfg, "--size", "qwen2_5_vl_3b", "--set", "model.gradient_checkpointing=true"]) == 0
    )
    out = capsys.readouterr().out
    assert (
        out.startswith("qwen2_5_vl_3b: 3.755 B parameters")
        and "| one GPU |" in out
        and "| DDP, 2 or more GPUs |" in out
    )
    assert "FSDP2 × 8 GPUs" in out and GIB == 2**30
