"""Real model sizes built on the meta device (nothing allocated, nothing downloaded): the
parameter counts match the published checkpoints', and the offline tokenizer's ids are wired in."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vidrl.models.sizes import sized_config
from vidrl.models.tiny import build_tokenizer


@pytest.mark.parametrize(
    ("size", "billions", "tied"), [("qwen2_5_vl_3b", 3.755, True), ("qwen2_5_vl_7b", 8.292, False)]
)
def test_real_sizes_have_the_published_parameter_counts(size, billions, tied):
    tok = build_tokenizer()
    config = sized_config(size, tok)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    assert abs(total / 1e9 - billions) < 0.001, total  # Qwen2.5-VL-3B: 3.75 B, 7B: 8.29 B parameters
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tied
    assert config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    with pytest.raises(ValueError, match="unknown size 'qwen2_5_vl_70b'"):
        sized_config("qwen2_5_vl_70b", tok)
