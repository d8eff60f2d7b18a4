"""Roll-outs on a tiny real model: repeated prompts, masks, and log-probs that equal a plain
float64 log-softmax of one forward over the whole sequence."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vidrl.engine.rollout import repeat_batch, response_mask, rollout, sequence_logprobs
from vidrl.models.generate import HFGenerate
from vidrl.types import Sampling

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(video_prompts):
    path, processor, batch, _ = video_prompts
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path)
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    backend = HFGenerate().attach(model)
    gen = rollout(backend, batch, 3, Sampling(max_new_tokens=8), eos, processor.tokenizer.pad_token_id)
    return model, processor, batch, gen, eos


def test_response_mask_stops_after_the_first_end_of_turn():
    ids = torch.tensor([[5, 9, 7, 0, 0], [5, 5, 5, 5, 5], [9, 9, 1, 1, 1]])
    assert response_mask(ids, eos_id=9).tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    stops = response_mask(torch.tensor([[5, 7, 9, 1], [9, 7, 3, 3], [4, 4, 4, 4]]), eos_id=(7, 9))
    assert stops.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]  # the first of any stop id


def test_repeat_batch_repeats_prompts_and_their_patch_blocks(setup):
    _, _, batch, _, _ = setup
    rep = repeat_batch(batch, 3)
    assert rep["input_ids"].shape[0] == 6 and torch.equal(rep["input_ids"][1], batch["input_ids"][0])
    sizes = batch["video_grid_thw"].prod(-1).tolist()
    first = batch["pixel_values_videos"][: sizes[0]]
    assert torch.equal(rep["pixel_values_videos"][sizes[0] : 2 * sizes[0]], first)  # copy 2 of prompt 0
    assert rep["video_grid_thw"].shape[0] == 6


def test_rollout_shapes(setup):
    _, _, batch, gen, eos = setup
    assert gen.response_ids.shape[0] == 6 and gen.response_ids.shape[1] <= 8
    assert gen.prompt["input_ids"].shape == (6, batch["input_ids"].shape[1])
    assert torch.equal(gen.response_mask, response_mask(gen.response_ids, eos))


def test_logprobs_equal_a_float64_log_softmax_of_one_forward(setup):
    model, _, _, gen, _ = setup
    with torch.no_grad():
        lp = sequence_logprobs(model, gen)
        ids = torch.cat([gen.prompt["input_ids"], gen.response_ids], 1)
        mask = torch.cat([gen.prompt["attention_mask"], gen.response_mask], 1)
        text_keys = ("input_ids", "attention_mask", "mm_token_type_ids")
        extra = {k: v for k, v in gen.prompt.items() if k not in text_keys}
        mm = torch.cat([gen.prompt["mm_token_type_ids"], torch.zeros_like(gen.response_ids)], 1)
        logits = model(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm, **extra).logits.double()
    L = gen.prompt["input_ids"].shape[1]
    ref = torch.log_softmax(logits[:, L - 1 : -1], -1).gather(2, gen.response_ids[..., None]).squeeze(-1)
    ref = ref * gen.response_mask
    torch.testing.assert_close(lp.double(), ref, rtol=1e-5, atol=1e-5)
    assert (lp[gen.response_mask == 0] == 0).all()


@pytest.mark.parametrize("share_prefix", [False, True])
def test_entropies_come_from_the_same_forward_and_equal_a_float64_softmax(setup, share_prefix):
    """Each response token's entropy of π(· | prefix) at temperature 0.7, from the lean head (no
    second forward), per-row and shared-prefix alike; 0 off the mask; detached."""
    model, _, _, gen, _ = setup
    lp, ent = sequence_logprobs(model, gen, temperature=0.7, share_prefix=share_prefix, entropy=True)
    with torch.no_grad():
        ids = torch.cat([gen.prompt["input_ids"], gen.response_ids], 1)
        mask = torch.cat([gen.prompt["attention_mask"], gen.response_mask], 1)
        mm = torch.cat([gen.prompt["mm_token_type_ids"], torch.zeros_like(gen.response_ids)], 1)
        extra = {
            k: v
            for k, v in gen.prompt.items()
            if k not in ("input_ids", "attention_mask", "mm_token_type_ids")
        }
        logits = model(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm, **extra).logits.double()
    L = gen.prompt["input_ids"].shape[1]
    logp = torch.log_softmax(logits[:, L - 1 : -1] / 0.7, -1)
    ref = -(logp.exp() * logp).sum(-1) * gen.response_mask
    torch.testing.assert_close(ent.double(), ref, rtol=1e-5, atol=1e-5)
    assert ent.shape == lp.shape and not ent.requires_grad and lp.requires_grad and float(ref.max()) > 1


def test_row_slices_match_the_full_batch_and_carry_gradients(setup):
    model, _, _, gen, _ = setup
    with torch.no_grad():
        full = sequence_logprobs(model, gen)
    part = sequence_logprobs(model, gen, slice(2, 5))
    torch.testing.assert_close(part.detach(), full[2:5], rtol=1e-5, atol=1e-5)
    part.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()


def _full_logits_logprobs(model, gen, rows=slice(None)):
    """Today's reference: one forward with logits for every position, log-softmax in float64."""
    from vidrl.engine.rollout import _slice_prompt

    prompt = _slice_prompt(gen.prompt, rows, gen.clip_rows)
    resp, mask = gen.response_ids[rows], gen.response_mask[rows]
    inputs = {**prompt, "input_ids": torch.cat([prompt["input_ids"], resp], 1),
              "attention_mask": torch.cat([prompt["attention_mask"], mask], 1)}  # fmt: skip
    if "mm_token_type_ids" in prompt:
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(resp)], 1)
    logits = model(**inputs).logits[:, prompt["input_ids"].shape[1] - 1 : -1]
    lp = torch.log_softmax(logits.double(), -1).gather(2, resp[..., None]).squeeze(-1)
    return lp * mask


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_no_vocabulary_sized_logits_and_the_same_values_and_gradients(tiny_model_dir, arch):
    """The LM head runs on the response positions only and returns their log-probs (so no
    [sequence, V] logits); its own forward is back afterwards; values and gradients (LM head and a
    decoder layer) equal the full-logits path, on each tiny architecture, text-only prompts."""
    from transformers import AutoProcessor

    from vidrl.engine.rollout import given_responses

    path = tiny_model_dir(arch)
    processor = AutoProcessor.from_pretrained(path)
    torch.manual_seed(1)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float64)
    tok = processor.tokenizer
    tok.padding_side = "left"
    prompts = tok(["how many squares are there in the clip?", "colour?"], return_tensors="pt", padding=True)
    gen = given_responses(prompts, tok, ["<answer>2</answer>", "red, then blue"])
    head = model.get_output_embeddings()
    calls = []
    hook = head.register_forward_hook(lambda *a: calls.append(a))
    lean = sequence_logprobs(model, gen)
    hook.remove()
    ((_, (hidden,), out),) = calls  # the head ran once: on the response positions, to [b, T] log-probs
    t = gen.response_ids.shape[1]
    assert hidden.shape[:2] == (2, t + 1) and out.shape == (2, t) and "forward" not in vars(head)
    layer = next(p for n, p in model.named_parameters() if "layers.0.mlp" in n and "visual" not in n)
    lean.sum().backward()
    lean_grads = [p.grad.clone() for p in (head.weight, layer)]
    model.zero_grad()
    full = _full_logits_logprobs(model, gen)
    full.sum().backward()
    torch.testing.assert_close(lean, full, rtol=1e-10, atol=1e-10)
    for got, p in zip(lean_grads, (head.weight, layer), strict=True):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, p.grad, rtol=1e-9, atol=1e-10)
