"""The shared-prefix forward scores a prompt's responses with the prompt computed once, and gives
the per-row forward's log-probs and gradients (fp32, 1e-5) on every supported architecture, for
whole groups, groups cut by a micro-batch, left-padded prompts and responses of any length."""

import pytest
import torch
from shared_prefix_check import assert_shared_prefix_exact
from transformers import AutoModelForImageTextToText, AutoProcessor

from vidrl.engine.rollout import sequence_logprobs
from vidrl.engine.shared_prefix import can_share
from vidrl.models.generate import MEDIA_TOKEN_KEYS
from vidrl.models.inputs import prepare_batch, repeat_batch
from vidrl.models.policy import enable_gradient_checkpointing
from vidrl.testing import builders
from vidrl.types import Generation

G, T = 3, 7


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def setup(request, tiny_model_dir):
    """(model, generation): 2 video prompts of different lengths (4 frames at 2 fps, 6 at 0.05) × G random
    responses of lengths 7, 3, 5 | 1, 6, 7 (no media placeholder among them)."""
    path = tiny_model_dir(request.param)
    processor = AutoProcessor.from_pretrained(path)
    samples = [builders.sample(i=0), builders.sample("numeric", i=1, question="How many squares cross the "
                                                     "frame from the left, and in which order?")]  # fmt: skip
    batch, _ = prepare_batch(
        processor, samples, [builders.frames(4, seed=0), builders.frames(6, seed=1, fps=0.05)]
    )
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="sdpa")
    media = {getattr(model.config, k) for k in MEDIA_TOKEN_KEYS}
    g = torch.Generator().manual_seed(request.param_index)
    resp = torch.randint(0, len(processor.tokenizer), (2 * G, T), generator=g)
    resp[torch.isin(resp, torch.tensor(sorted(i for i in media if isinstance(i, int))))] = 50
    mask = (torch.arange(T)[None] < torch.tensor([7, 3, 5, 1, 6, 7])[:, None]).long()
    tensors = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    return model, Generation(repeat_batch(tensors, G), resp, mask, group_size=G)


@pytest.mark.parametrize("rows", [slice(None), slice(1, 5), slice(0, 3), slice(2, 6)])
def test_log_probs_and_gradients_equal_the_per_row_forward(setup, rows):
    model, gen = setup
    assert can_share(model, gen, rows)
    weights = torch.randn(gen.response_ids[rows].shape, generator=torch.Generator().manual_seed(3))
    lp, grads = assert_shared_prefix_exact(model, gen, rows, weights, temperature=0.7)
    assert (lp[gen.response_mask[rows] == 0] == 0).all()
    assert any("visual" in n for n in grads)  # the vision tower's gradient too


def test_each_prompt_goes_through_the_model_once(setup):
    """Rows 1..4 hold 2 of prompt 0's responses and 2 of prompt 1's: two packed rows, two clips."""
    model, gen = setup
    seen = []
    lm, visual = model.model.language_model, model.model.visual
    hooks = [
        lm.register_forward_pre_hook(
            lambda m, a, kw: seen.append(("lm", kw["inputs_embeds"].shape[0])), with_kwargs=True
        ),
        visual.register_forward_pre_hook(
            lambda m, a, kw: seen.append(("clips", len(kw.get("grid_thw", a[1] if len(a) > 1 else ())))),
            with_kwargs=True,
        ),
    ]
    try:
        with torch.no_grad():
            sequence_logprobs(model, gen, slice(1, 5), share_prefix=True)
    finally:
        for h in hooks:
            h.remove()
    assert ("lm", 2) in seen and ("clips", 2) in seen


def test_rows_that_share_no_prompt_take_the_per_row_forward(setup):
    model, gen = setup
    assert not can_share(model, gen, slice(2, 4))  # one row of each prompt
    assert not can_share(model, Generation(gen.prompt, gen.response_ids, gen.response_mask), slice(None))
    config = model.model.config
    for attn in ("eager", "flash_attention_2"):  # eager would add a boolean mask as numbers; flash takes none
        config._attn_implementation, saved = attn, config._attn_implementation
        try:
            assert not can_share(model, gen, slice(None))
        finally:
            config._attn_implementation = saved


def test_it_stays_exact_under_gradient_checkpointing(tiny_model_dir):
    """Each decoder layer recomputed in the backward pass with the packed rows' 4-D mask."""
    path = tiny_model_dir("qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(path)
    samples = [builders.sample(i=0), builders.sample("numeric", i=1)]
    batch, _ = prepare_batch(
        processor, samples, [builders.frames(4, seed=0), builders.frames(6, seed=1, fps=0.05)]
    )
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="sdpa")
    enable_gradient_checkpointing(model)  # as model.gradient_checkpointing: true does
    model.train()
    resp = torch.randint(20, 120, (2 * G, T), generator=torch.Generator().manual_seed(2))
    mask = (torch.arange(T)[None] < torch.tensor([7, 3, 5, 1, 6, 7])[:, None]).long()
    tensors = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    gen = Generation(repeat_batch(tensors, G), resp, mask, group_size=G)
    weights = torch.linspace(-1, 1, gen.response_ids[1:6].numel()).view(5, T)
    assert_shared_prefix_exact(model, gen, slice(1, 6), weights)
