"""Multi-turn tool roll-outs on the tiny Qwen2.5-VL: the policy's turns are forced to a script
(one row calls the clip tool, one answers at once) while the model's real incremental logits are
recorded; the single forward over the whole sequence — prompt video, turns, the observation's
video — must give the same log-probs, for both rows and for a micro-batch of one."""

import dataclasses

import pytest
import torch
from shared_prefix_check import assert_shared_prefix_exact
from transformers import AutoModelForImageTextToText, AutoProcessor

import vidrl
from vidrl.config import VisionBudget
from vidrl.engine.shared_prefix import can_share
from vidrl.models.inputs import Geometry, fit_image, prepare_batch, repeat_batch
from vidrl.plugins.frame_toolbox import GetVideoClipFrame
from vidrl.tools.multiturn import ToolSetup, TurnLimits, tool_rollout
from vidrl.types import ImagePixels

CALL = (
    '<think>look again</think><tool_call>{"name": "get_video_clip_frame", '
    '"arguments": {"start_time": 0, "end_time": 2}}</tool_call>'
)
ANSWER = "<think>it is red</think><answer>B</answer>"


class Forced(vidrl.RolloutBackend):
    """model.generate forced to each row's scripted turn (``scripts[row][turn]``), recording the
    model's raw log-prob of every forced token as generation computed it (KV cache included)."""

    def __init__(self, model, tok, scripts, stop_ids):
        self.model, self.tok, self.scripts, self.stop_ids = model, tok, scripts, stop_ids
        self.turn, self.rows_done, self.seen = 0, set(), {r: [] for r in range(len(scripts))}

    def generate(self, request):
        g, sampling = request.group_size, request.sampling
        prompt = request.batch if g == 1 else repeat_batch(request.batch, g)  # the first turn: G per prompt
        rows = [r for r in range(len(self.scripts)) if r not in self.rows_done]
        width = prompt["input_ids"].shape[1]
        ids = {r: self.tok(self.scripts[r][self.turn], add_special_tokens=False)["input_ids"] for r in rows}

        def allowed(b, so_far):
            script = ids[rows[b]]
            k = len(so_far) - width
            return [script[k]] if k < len(script) else [self.tok.pad_token_id]

        out = self.model.generate(**prompt, do_sample=False, max_new_tokens=sampling.max_new_tokens,
                                  eos_token_id=list(self.stop_ids), pad_token_id=self.tok.pad_token_id,
                                  prefix_allowed_tokens_fn=allowed, output_logits=True,
                                  return_dict_in_generate=True)  # fmt: skip
        for b, r in enumerate(rows):
            for k, t in enumerate(ids[r][: len(out.logits)]):  # a turn budget may cut the script
                self.seen[r].append(torch.log_softmax(out.logits[k][b].double(), -1)[t].item())
            if self.turn + 1 >= len(self.scripts[r]):
                self.rows_done.add(r)
        self.turn += 1
        return out.sequences[:, width:]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, synth_data):
    path = tiny_model_dir("qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    ds = vidrl.load_dataset(synth_data)
    sample = ds.samples[0]
    backend = vidrl.Session().load().create("video_backend", "pyav")
    video = str(ds.path(sample.video))
    clip = vidrl.read_video(backend, video, fps=1.0, min_frames=2, max_frames=4)
    batch, _ = prepare_batch(processor, [sample], [clip])
    tok = processor.tokenizer
    stops = tok.convert_tokens_to_ids(["<|im_end|>", "</tool_call>", "</answer>"])
    tool = GetVideoClipFrame(GetVideoClipFrame.Config(max_pixels=56 * 56))
    context = vidrl.ToolContext(sample, video, backend, sample.duration)
    tools = ToolSetup({tool.name: tool}, [context], stops, stops[1])
    return model, processor, batch, tools


def test_a_tool_rollout_scores_in_one_forward_as_it_was_sampled(setup):
    model, processor, batch, tools = setup
    tok = processor.tokenizer
    forced = Forced(model, tok, [[CALL, ANSWER], [ANSWER]], tools.stop_ids)
    limits = TurnLimits(max_turns=2, max_turn_tokens=128, max_total_tokens=2048)
    gen, convs = tool_rollout(
        forced, processor, batch, 2, vidrl.Sampling(0.0, max_new_tokens=128), limits, tools
    )
    assert [c.text for c in convs] == [CALL + ANSWER, ANSWER]  # the observation is not the policy's text
    (call,) = convs[0].calls
    assert (
        call["ok"] and call["name"] == "get_video_clip_frame" and call["frames"] == 4 and convs[1].calls == []
    )
    assert gen.clip_rows.tolist() == [0, 0, 1] and gen.prompt["video_grid_thw"].shape[0] == 3
    video_id = model.config.video_token_id
    obs = (gen.response_ids[0] == video_id) & gen.response_attention[0].bool()
    assert obs.sum() > 0 and gen.response_mask[0][obs].sum() == 0  # attended, never trained
    assert (gen.response_types[0][obs] != 0).all()
    lp = vidrl.sequence_logprobs(model, gen)
    for r in (0, 1):
        one = lp[r][gen.response_mask[r].bool()].double()
        torch.testing.assert_close(
            one, torch.tensor(forced.seen[r], dtype=torch.float64), atol=1e-4, rtol=1e-4
        )
    torch.testing.assert_close(
        vidrl.sequence_logprobs(model, gen, slice(0, 1))[0], lp[0], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        vidrl.sequence_logprobs(model, gen, slice(1, 2))[0], lp[1][: lp.shape[1]], atol=1e-5, rtol=1e-5
    )


def test_a_tool_rollout_of_an_image_and_video_prompt_scores_as_it_was_sampled(setup):
    """The prompt's images stay with their row through the turns (and ahead of the observation
    clips in the row's vision inputs): one forward scores what generation computed."""
    model, processor, batch, tools = setup
    geo = Geometry.of(processor)
    picture = fit_image(torch.full((40, 70, 3), 128, dtype=torch.uint8), geo, VisionBudget())
    sample = dataclasses.replace(tools.contexts[0].sample, images=("a.png",)).with_extra(
        ImagePixels((picture,))
    )
    context = tools.contexts[0]
    clip = vidrl.read_video(context.backend, context.video_path, fps=1.0, min_frames=2, max_frames=4)
    with_image, _ = prepare_batch(processor, [sample], [clip])
    forced = Forced(model, processor.tokenizer, [[CALL, ANSWER], [ANSWER]], tools.stop_ids)
    limits = TurnLimits(max_turns=2, max_turn_tokens=128, max_total_tokens=2048)
    greedy = vidrl.Sampling(0.0, max_new_tokens=128)
    gen, convs = tool_rollout(forced, processor, with_image, 2, greedy, limits, tools)
    assert len(convs[0].calls) == 1 and gen.prompt["image_grid_thw"].shape[0] == 2  # the image, in both rows
    assert gen.clip_rows.tolist() == [0, 0, 1] and not can_share(model, gen, slice(None))
    lp = vidrl.sequence_logprobs(model, gen)
    for r in (0, 1):
        one = lp[r][gen.response_mask[r].bool()].double()
        torch.testing.assert_close(
            one, torch.tensor(forced.seen[r], dtype=torch.float64), atol=1e-4, rtol=1e-4
        )


def test_the_shared_prefix_forward_scores_tool_rollouts_exactly(setup):
    """Two roll-outs of one prompt, one with an observation clip inside its response: packed with
    the prompt once, their log-probs and gradients equal the per-row forward's."""
    model, processor, batch, tools = setup
    forced = Forced(model, processor.tokenizer, [[CALL, ANSWER], [ANSWER]], tools.stop_ids)
    limits = TurnLimits(max_turns=2, max_turn_tokens=128, max_total_tokens=2048)
    gen, _ = tool_rollout(forced, processor, batch, 2, vidrl.Sampling(0.0, max_new_tokens=128), limits, tools)
    assert gen.group_size == 2 and can_share(model, gen, slice(None))
    weights = torch.linspace(-1, 1, gen.response_ids.numel()).view_as(gen.response_ids)
    assert_shared_prefix_exact(model, gen, slice(None), weights, temperature=0.9)


def test_teacher_forcing_builds_the_sequence_a_rollout_of_the_same_turns_builds(setup):
    """given_conversations (SFT through tools) = a forced roll-out of the same turns, plus the
    end-of-turn token the last turn is trained to emit."""
    model, processor, batch, tools = setup
    tok = processor.tokenizer
    forced = Forced(model, tok, [[CALL, ANSWER]], tools.stop_ids)
    limits = TurnLimits(max_turns=2, max_turn_tokens=128, max_total_tokens=2048)
    rolled, (conv,) = tool_rollout(forced, processor, batch, 1, vidrl.Sampling(0.0, max_new_tokens=128),
                                   limits, tools)  # fmt: skip
    given, (taught,) = vidrl.given_conversations(processor, batch, [CALL + ANSWER], tools)
    n = rolled.response_ids.shape[1]
    assert given.response_ids[0].tolist() == [
        *rolled.response_ids[0].tolist(),
        tok.convert_tokens_to_ids("<|im_end|>"),
    ]
    assert given.response_mask[0].tolist() == [*rolled.response_mask[0].tolist(), 1]
    assert torch.equal(given.response_types[0, :n], rolled.response_types[0])
    assert torch.equal(given.prompt["pixel_values_videos"], rolled.prompt["pixel_values_videos"])
    assert taught.text == conv.text == CALL + ANSWER and taught.calls == conv.calls


def test_teacher_forcing_runs_every_call_and_reports_bad_ones(setup):
    _, processor, batch, tools = setup
    bad = CALL.replace('"start_time": 0, "end_time": 2', '"start_time": 3, "end_time": 2')
    gen, (conv,) = vidrl.given_conversations(processor, batch, [bad + CALL + ANSWER], tools)
    assert [c["ok"] for c in conv.calls] == [False, True]
    assert "invalid clip [3, 2]" in conv.calls[0]["text"]
    assert gen.clip_rows.tolist() == [0, 0]  # the prompt's clip and the good call's frames
    assert int(gen.response_mask.sum()) == len(tok_ids(processor, bad + CALL + ANSWER)) + 1


def tok_ids(processor, text):
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    ("limits", "succeeded", "ends_with_call"),
    [
        (TurnLimits(max_turns=0, max_turn_tokens=96, max_total_tokens=2048), 0, True),  # no call allowed
        (
            TurnLimits(max_turns=2, max_turn_tokens=96, max_total_tokens=100),
            0,
            True,
        ),  # the observation does not fit
        (
            TurnLimits(max_turns=2, max_turn_tokens=8, max_total_tokens=2048),
            0,
            False,
        ),  # the turn is cut at 8 tokens
    ],
)
def test_budgets(setup, limits, succeeded, ends_with_call):
    model, processor, batch, tools = setup
    forced = Forced(model, processor.tokenizer, [[CALL, ANSWER]], tools.stop_ids)
    gen, (conv,) = tool_rollout(
        forced, processor, batch, 1, vidrl.Sampling(0.0, max_new_tokens=128), limits, tools
    )
    assert sum(c["ok"] for c in conv.calls) == succeeded and conv.done
    assert conv.text.endswith("</tool_call>") is ends_with_call
    assert int(gen.response_mask.sum()) <= limits.max_turn_tokens and gen.clip_rows.tolist() == [0]


def test_an_rl_stage_with_tools_calls_them_and_trains(tiny_model_dir, tmp_path):
    """SFT through the tool teaches the tiny model to call the clip tool and answer after its
    result (the run's tools are listed in every stage's prompts); the rl stage then rolls out with
    them: every roll-out makes its one allowed call, it succeeds, the policy answers after the
    observation, and rewards read the policy's turns only; every call is logged."""
    import json

    from vidrl.data.synth import synthesize
    from vidrl.engine.pipeline import train

    path = synthesize(tmp_path / "data", num=2, seed=4, tasks=["long_clip"])
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "response": f"{CALL}<answer>{r['answer']}</answer>"}) + "\n"
                            for r in rows))  # fmt: skip
    raw = {
        "model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
        "data": {"train": str(path), "eval": str(path), "max_frames": 4, "fps": 0.1},
        "tools": [{"name": "get_video_clip_frame", "options": {"max_pixels": 56 * 56}}],
        "stages": [
            {"name": "sft",
             "options": {"steps": 60, "batch_size": 2, "micro_batch_size": 2, "optim": {"lr": 3e-3}}},
            {"name": "rl",
             "options": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "micro_batch_size": 4,
                         "temperature": 0.1}},
        ],
        "advantage": "grpo",
        "loss": "ppo_clip",
        "rewards": [{"name": "format", "options": {"tool_calls": True, "tool_bonus": 0.5}},
                    "multiple_choice"],
        "log": {"progress": False, "plot": False},
        "eval": {"before": False, "between_stages": False, "max_new_tokens": 96},
        "turns": {"max_turns": 1, "max_turn_tokens": 96, "max_total_tokens": 400},
    }  # fmt: skip
    after = train(*vidrl.load_config(raw), tmp_path / "run")["after"]
    assert after["tools/calls"] == 1.0 and after["tools/success"] == 1.0, after  # held-out answers use tools
    answers = [
        json.loads(x) for x in (tmp_path / "run" / "eval-after-answers.jsonl").read_text().splitlines()
    ]
    assert len(answers) == 2 and all(len(a["calls"]) == 1 and a["calls"][0]["ok"] for a in answers)
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rl = [m for m in metrics if m.get("stage") == "rl"]
    got = [{k: v for k, v in m.items() if k.startswith(("tools/", "reward/", "response_length"))} for m in rl]
    assert len(rl) == 2 and all(m["tools/calls"] > 0 and m["tools/success"] == 1.0 for m in rl), got
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    for smp in samples:  # rewards saw the policy's turns: the call and the answer, never the observation
        assert smp["response"].startswith(CALL + "<answer>") and "Video clip from" not in smp["response"]
    logged = [json.loads(x) for x in (tmp_path / "run" / "tools.jsonl").read_text().splitlines()]
    assert [(x["step"], x["row"]) for x in logged] == [(s, r) for s in (61, 62) for r in range(4)]
    for x in logged:  # every roll-out's call: its arguments, outcome and the frames returned
        (call,) = x["calls"]
        assert call["arguments"] == {"start_time": 0, "end_time": 2} and call["ok"], call
        assert call["frames"] == len(call["info"]["times"]) > 0 and all(
            0 <= t <= 2 for t in call["info"]["times"]
        )
    strips = sorted(p.name for p in (tmp_path / "run" / "tool-frames").iterdir())
    assert strips == [
        "step-0000061-row-000.png",
        "step-0000061-row-001.png",
    ]  # rl step 1; frame_strips: 2
