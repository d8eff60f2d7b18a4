"""Real model sizes without downloading them: the architecture dimensions of public Qwen2.5-VL
checkpoints (their ``config.json``), with the special-token ids of vidrl's offline tokenizer so
that the tiny processor feeds them. A model built from one has random weights: for benchmarks on
a GPU and memory estimates on the meta device, never for quality.
"""

from __future__ import annotations

from typing import Any

#: Qwen2.5-VL-3B-Instruct and -7B-Instruct: the text decoder and vision tower dimensions
SIZES: dict[str, dict[str, Any]] = {
    "qwen2_5_vl_3b": {
        "text": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                 "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
                 "tie_word_embeddings": True},
        "vision": {"out_hidden_size": 2048},
    },
    "qwen2_5_vl_7b": {
        "text": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                 "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                 "tie_word_embeddings": False},
        "vision": {"out_hidden_size": 3584},
    },
}  # fmt: skip
#: shared by both sizes
VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
          "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
          "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2}  # fmt: skip
ROPE = {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1_000_000.0}


def sized_config(size: str, tokenizer: Any) -> Any:
    """The ``Qwen2_5_VLConfig`` of ``size`` (a key of ``SIZES``) with ``tokenizer``'s special ids."""
    from transformers import Qwen2_5_VLConfig

    from vidrl.errors import choices_hint
    from vidrl.models.tiny import _ids, _special

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; {choices_hint(size, SIZES)}")
    spec = SIZES[size]
    text = {**spec["text"], "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_parameters": ROPE,
            **_special(tokenizer)}  # fmt: skip
    tie = text.pop("tie_word_embeddings")
    vision = {**VISION, **spec["vision"]}
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=tie, **_ids(tokenizer)
    )
