"""The sft and rl stages: options, SFT targets, and teacher forcing against a plain forward."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

import vidrl
from vidrl import Sample, Session


def _stage(name, **options):
    cls = Session().load().registry("stage").get(name)
    return cls(cls.Config(**options))


def test_sft_target_prefers_the_rows_response():
    sft = _stage("sft", template="<think>ok</think><answer>{answer}</answer>")
    plain = Sample("a", "q", "B")
    written = Sample("b", "q", "B", metadata={"response": "<answer>B</answer> because"})
    assert sft.target(plain) == "<think>ok</think><answer>B</answer>"
    assert sft.target(written) == "<answer>B</answer> because"


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("sft", {"template": "<answer></answer>"}, "must contain {answer}"),
        ("sft", {"batch_size": 0}, "must be >= 1"),
        ("rl", {"temperature": 0.0}, "temperature must be > 0"),
        ("rl", {"group_size": 0, "steps": 0}, "'steps': 0, 'group_size': 0"),
    ],
)
def test_bad_stage_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        _stage(name, **options)


def test_rl_check_names_missing_components():
    rl = _stage("rl")
    config, _ = vidrl.load_config({"advantage": "grpo"})
    assert rl.check(config) == ["loss: required by the rl stage", "rewards: required by the rl stage"]


def test_given_responses_teacher_forcing_matches_a_plain_forward(video_prompts):
    path, processor, batch, samples = video_prompts
    tok = processor.tokenizer
    gen = vidrl.given_responses(batch, tok, ["<answer>A</answer>", "<answer>42 squares</answer>"])
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    lengths = gen.response_mask.sum(1).tolist()
    assert [gen.response_ids[i, n - 1].item() for i, n in enumerate(lengths)] == [eos, eos]
    assert lengths[0] < lengths[1] and gen.response_ids[0, lengths[0] :].eq(tok.pad_token_id).all()
    model = AutoModelForImageTextToText.from_pretrained(path).double()
    lp = vidrl.sequence_logprobs(model, gen)
    for i, n in enumerate(lengths):  # one prompt at a time, no padding at all
        real = batch["attention_mask"][i].bool()
        prompt = batch["input_ids"][i][real]
        ids = torch.cat([prompt, gen.response_ids[i, :n]])[None]
        types = torch.cat([batch["mm_token_type_ids"][i][real], torch.zeros(n, dtype=torch.long)])[None]
        keys = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
        vision = {k: _rows(gen.prompt, k, i) for k in keys if k in gen.prompt}
        logits = model(
            input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types, **vision
        ).logits[0, len(prompt) - 1 : -1]
        expected = torch.log_softmax(logits.double(), -1).gather(-1, gen.response_ids[i, :n, None])[:, 0]
        torch.testing.assert_close(lp[i, :n].double(), expected, rtol=1e-6, atol=1e-6)
        assert lp[i, n:].eq(0).all()


def _rows(prompt, key, i):
    """Prompt i's part of a batched vision input (its block of flattened patches)."""
    if key == "pixel_values_videos":
        return torch.split(prompt[key], prompt["video_grid_thw"].prod(-1).tolist())[i]
    return prompt[key][i : i + 1]
