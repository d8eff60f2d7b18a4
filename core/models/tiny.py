"""Tiny real models for tests and the demo, made offline.

``build_tiny_model(arch, out_dir)`` writes a local model directory — a real Qwen2-VL, Qwen2.5-VL
or Qwen3-VL architecture from a small config with random weights, a byte-level BPE tokenizer
trained here on a small corpus (with the Qwen chat and vision special tokens) and a chat
template — that loads through ``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained``
exactly as a downloaded checkpoint does. Nothing touches a hub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
TAGS = ["<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>"]
WORDS = ("which what when how many colour color square first second appears visible video frame seconds "
         "start end time red green blue yellow magenta cyan grey the is a of to and in it answer think "
         "between from option A B C D yes no not").split()  # fmt: skip

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)  # fmt: skip


def build_tokenizer(vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer (any text encodes; no unknown tokens) trained on a small corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS)] * 4 + [f"{i / 8:.3f} seconds {i}" for i in range(200)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    fast.add_tokens(TAGS)
    return fast


@dataclass(frozen=True)
class TinyArch:
    """How to build one architecture: its config from token ids, and its processor classes."""

    config: Callable[[dict[str, int], int], Any]
    processor: str
    image_processor: str
    video_processor: str
    patch_size: int


def _ids(tok: Any) -> dict[str, int]:
    names = {
        "image_token_id": "<|image_pad|>",
        "video_token_id": "<|video_pad|>",
        "vision_start_token_id": "<|vision_start|>",
        "vision_end_token_id": "<|vision_end|>",
    }
    return {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}


def _special(tok: Any) -> dict[str, int]:
    """bos/eos/pad ids of the text model, from the tokenizer (the defaults are Qwen's 151k ids)."""
    return {
        "bos_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 4096}  # fmt: skip
MROPE = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}


def _qwen2_vl(ids: dict[str, int], vocab: int) -> Any:
    from transformers import Qwen2VLConfig

    text = {**TEXT, "vocab_size": vocab, "rope_parameters": MROPE, **ids.pop("text")}
    vision = {
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": 64,
        "num_heads": 2,
        "mlp_ratio": 2,
        "patch_size": 14,
    }
    return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)


#: larger than tiny, still CPU-trainable (the comparisons' base models): Qwen2.5-VL only. The
#: tower's width matters most: on videos with moving squares and distractors a 32-wide tower learns
#: only in part which colours its tokens cover, a 64-wide one learns it (benchmarks/algorithms/README.md)
SMALL = {
    "text": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
             "num_key_value_heads": 2, "rope_parameters": {**MROPE, "mrope_section": [4, 6, 6]}},
    "vision": {"depth": 4, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
               "out_hidden_size": 128, "fullatt_block_indexes": [1, 3]},
}  # fmt: skip


def _qwen2_5_vl(ids: dict[str, int], vocab: int, size: str = "tiny") -> Any:
    from transformers import Qwen2_5_VLConfig

    bigger = SMALL if size == "small" else {"text": {}, "vision": {}}
    text = {**TEXT, "vocab_size": vocab, "rope_parameters": MROPE, **bigger["text"], **ids.pop("text")}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1]}  # fmt: skip
    vision.update(bigger["vision"])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)


def _qwen3_vl(ids: dict[str, int], vocab: int) -> Any:
    from transformers import Qwen3VLConfig

    rope = {
        "rope_type": "default",
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
        "rope_theta": 10000.0,
    }
    text = {**TEXT, "vocab_size": vocab, "head_dim": 16, "rope_parameters": rope, **ids.pop("text")}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "patch_size": 16, "num_position_embeddings": 64, "deepstack_visual_indexes": [1]}  # fmt: skip
    return Qwen3VLConfig(text_config=text, vision_config=vision, **ids)


ARCHS: dict[str, TinyArch] = {
    "qwen2_vl": TinyArch(_qwen2_vl, "Qwen2VLProcessor", "Qwen2VLImageProcessor", "Qwen2VLVideoProcessor", 14),
    "qwen2_5_vl": TinyArch(
        _qwen2_5_vl, "Qwen2_5_VLProcessor", "Qwen2VLImageProcessor", "Qwen2VLVideoProcessor", 14
    ),
    "qwen3_vl": TinyArch(_qwen3_vl, "Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3VLVideoProcessor", 16),
}


def build_tiny_model(
    arch: str, out_dir: str | Path, seed: int = 0, max_pixels: int = 128 * 128, size: str = "tiny"
) -> Path:
    """Write a tiny ``arch`` model directory (config, random weights, tokenizer, processor);
    ``size`` ``small`` (Qwen2.5-VL only): 3 layers of width 128 and a 4-block tower of width 64."""
    import torch
    import transformers
    from transformers import AutoModelForImageTextToText

    from vidrl.errors import choices_hint

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; {choices_hint(arch, ARCHS)}")
    spec = ARCHS[arch]
    if size not in ("tiny", "small") or (size == "small" and arch != "qwen2_5_vl"):
        raise ValueError(f"size {size!r}: tiny (every architecture) or small (qwen2_5_vl only)")
    tok = build_tokenizer()
    extra = {"size": size} if size != "tiny" else {}
    config = spec.config({**_ids(tok), "text": _special(tok)}, len(tok), **extra)
    config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    factor = spec.patch_size * 2
    size = {"shortest_edge": factor * factor, "longest_edge": max_pixels}
    processor = getattr(transformers, spec.processor)(
        image_processor=getattr(transformers, spec.image_processor)(size=size, patch_size=spec.patch_size),
        video_processor=getattr(transformers, spec.video_processor)(
            size=size, patch_size=spec.patch_size, cap_pixels_per_frame=True
        ),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_causal_lm(seed: int = 0) -> tuple[Any, Any]:
    """A tiny text-only Qwen2 causal LM with random weights and the tokenizer above, in memory:
    (model, tokenizer). What tests and examples use as an LLM judge."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    config = Qwen2Config(vocab_size=len(tok), **TEXT, **_special(tok))
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval(), tok
