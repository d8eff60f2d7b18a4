"""A clip repeated over a group's rows is encoded once per forward, with the same log-probs and
gradients (vision tower included) as encoding every copy, on each tiny architecture."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vidrl.engine.rollout import given_responses, repeat_batch, sequence_logprobs
from vidrl.models.inputs import prepare_batch
from vidrl.models.shared_vision import share_identical_clips
from vidrl.models.tiny import ARCHS
from vidrl.testing import builders

pytestmark = pytest.mark.slow


def _logprobs_and_grads(model, gen):
    model.zero_grad()
    lp = sequence_logprobs(model, gen)
    (lp * torch.linspace(0.5, 1.5, lp.numel()).view_as(lp)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return lp.detach(), grads


@pytest.mark.parametrize("arch", ARCHS)
def test_each_clip_is_encoded_once_and_nothing_changes(tiny_model_dir, arch):
    path = tiny_model_dir(arch)
    processor = AutoProcessor.from_pretrained(path)
    samples = [builders.sample("multiple_choice", i) for i in range(2)]
    clips = [builders.frames(4, 56, 84, seed=i) for i in range(2)]
    prompt, _ = prepare_batch(processor, samples, clips)
    group = repeat_batch(prompt, 3)  # 2 prompts × 3 rows: each clip three times, consecutively
    texts = ["<answer>A</answer>", "B", "the answer is C", "<answer>D</answer>", "A, then B", "C"]
    gen = given_responses(group, processor.tokenizer, texts)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float64)
    every, every_grads = _logprobs_and_grads(model, gen)
    visual = getattr(model, "model", model).visual
    rows_seen = []  # patch rows the tower embeds
    visual.patch_embed.register_forward_pre_hook(lambda m, args: rows_seen.append(args[0].shape[0]))
    assert share_identical_clips(model) and share_identical_clips(model)  # idempotent
    once, once_grads = _logprobs_and_grads(model, gen)
    assert rows_seen == [int(gen.prompt["video_grid_thw"].prod(-1).sum()) // 3]  # 6 rows, 2 distinct clips
    torch.testing.assert_close(once, every, rtol=1e-10, atol=1e-10)
    assert any("visual" in n for n in once_grads) and once_grads.keys() == every_grads.keys()
    for name, grad in every_grads.items():
        # the copies' gradients summed before the tower rather than after: in another order, and the
        # towers' norms compute in float32 even for a float64 model (relative 1e-7 seen)
        scale = float(grad.abs().max())
        torch.testing.assert_close(once_grads[name], grad, rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_distinct_clips_go_through_untouched(tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    visual = model.model.visual
    pixels, grid = torch.randn(2 * 16, visual.config.in_channels * 2 * 14 * 14), torch.tensor([[1, 4, 4]] * 2)
    share_identical_clips(model)
    assert not torch.equal(pixels[:16], pixels[16:])
    out = visual(pixels, grid_thw=grid)
    assert out.pooler_output.shape[0] == 2 * 16 // 4


def test_a_copy_of_the_model_encodes_with_its_own_weights(tiny_model_dir):
    import copy

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    share_identical_clips(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.model.visual.patch_embed.proj.weight.mul_(2)
    visual = model.model.visual
    pixels = torch.randn(16, visual.config.in_channels * 2 * 14 * 14).repeat(2, 1)
    grid = torch.tensor([[1, 4, 4]] * 2)
    a, b = visual(pixels, grid_thw=grid).pooler_output, twin.model.visual(pixels, grid_thw=grid).pooler_output
    assert torch.equal(a[:4], a[4:]) and not torch.allclose(a, b)
