"""Whole runs on the tiny model: what a run directory holds, exact resume after a crash, the
demo config's reward rising, and ``vidrl eval`` on the result."""

import io
import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vidrl
from vidrl import load_config
from vidrl.cli import main
from vidrl.engine.loop import StepLoop
from vidrl.engine.pipeline import train

pytestmark = pytest.mark.slow


class Length(vidrl.Reward):
    """Response length / 10: varies inside every group, so every RL step really updates. Counts the
    responses it scored: state of its own, which checkpoints carry (``Component.state_dict``)."""

    name = "length"

    def __init__(self, config=None):
        super().__init__(config)
        self.scored = 0

    def __call__(self, responses, samples):
        self.scored += len(responses)
        return [len(r) / 10 for r in responses]

    def state_dict(self):
        return {"scored": self.scored}

    def load_state_dict(self, state):
        self.scored = state["scored"]


class HalfLength(vidrl.Reward):
    """Response length / 10 for half of the samples (by a hash of their id), 0 for the others:
    the others' groups are uninformative, so dynamic sampling drops them."""

    name = "half_length"

    def __call__(self, responses, samples):
        return [
            len(r) / 10 if zlib.crc32(s.id.encode()) % 2 else 0.0
            for r, s in zip(responses, samples, strict=True)
        ]


class LengthPlugin:
    @vidrl.hookimpl
    def register_rewards(self, register):
        register(Length)
        register(HalfLength)


def tiny_run(model_dir, **overrides):
    raw = {
        "seed": 3,
        "model": {"path": str(model_dir)},
        "data": {"synth": {"train_videos": 6, "eval_videos": 2}, "fps": 1.0, "max_frames": 2},
        "stages": [
            {"name": "sft", "options": {"steps": 2, "batch_size": 4, "micro_batch_size": 2}},
            {
                "name": "rl",
                "options": {
                    "steps": 4,
                    "prompts_per_step": 2,
                    "group_size": 3,
                    "micro_batch_size": 4,
                    "max_new_tokens": 6,
                    "optim": {"lr": 1e-3, "schedule": "cosine"},
                },
            },
        ],  # fmt: skip
        "advantage": "grpo",
        "loss": {"name": "ppo_clip", "options": {"beta": 0.05}},
        "rewards": [{"name": "format", "options": {"think": False}}, "multiple_choice", "numeric", "length"],
        "checkpoint": {"every": 2, "keep": 1},
        "log": {"progress": False},
        "eval": {"max_new_tokens": 6},
    }
    raw.update(overrides)
    return load_config(raw, extra_plugins=[(LengthPlugin(), "test_length")])


def _params(run_dir):
    return load_file(run_dir / "model" / "model.safetensors")


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_run_directory_holds_everything(tiny_model_dir, tmp_path):
    config, session = tiny_run(tiny_model_dir("qwen2_5_vl"))
    summary = train(config, session, tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "samples.jsonl",
        "curves.png",
        "eval-before.json",
        "eval-after.json",
        "eval-after-answers.jsonl",
    ):
        assert (run / name).is_file(), name
    answers = _lines(run / "eval-after-answers.jsonl")  # one per held-out sample, graded as the score
    assert len(answers) == summary["after"]["n"] and "calls" not in answers[0]
    assert sum(a["correct"] for a in answers if a["correct"] is not None) == round(
        summary["after"]["accuracy"] * sum(a["correct"] is not None for a in answers)
    )
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["latest", "stage-0-sft", "stage-1-rl", "step-0000004"]  # keep=1 pruned nothing older
    assert (run / "checkpoints" / "latest").read_text().strip() == "stage-1-rl"
    rows = [r for r in _lines(run / "metrics.jsonl") if "eval" not in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["stage"] for r in rows] == ["sft"] * 2 + ["rl"] * 4
    for key in ("reward/mean", "reward/format", "adv/zero_std_frac", "loss", "kl", "clip_frac", "grad_norm",
                "response_length/mean", "time/rollout", "time/update", "data/skipped"):  # fmt: skip
        assert key in rows[-1], key
    assert (
        rows[-1]["kl"] > 0
        and rows[-1]["adv/zero_std_frac"] < 1
        and summary["after"]["n"] == summary["before"]["n"] > 0
    )
    assert {"accuracy", "accuracy/multiple_choice", "accuracy/numeric"} <= set(summary["after"])
    sample = _lines(run / "samples.jsonl")[0]
    assert {"step", "sample", "question", "response", "reward", "rewards", "advantage"} <= set(sample)


def test_resume_after_a_crash_continues_exactly(tiny_model_dir, tmp_path, monkeypatch):
    path = tiny_model_dir("qwen2_5_vl")
    straight = tmp_path / "straight"
    train(*tiny_run(path), straight)

    original = StepLoop.end_step

    def crash_after_step_5(self, metrics, record=None):
        original(self, metrics, record)
        if self.state.global_step == 5:  # the newest checkpoint is step 4
            raise RuntimeError("simulated crash")

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(StepLoop, "end_step", crash_after_step_5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(*tiny_run(path), crashed)
    monkeypatch.setattr(StepLoop, "end_step", original)
    assert not (crashed / "model").exists()
    assert (crashed / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    train(*tiny_run(path), crashed, resume=True)

    a, b = _params(straight), _params(crashed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    ra, rb = (_lines(d / "metrics.jsonl") for d in (straight, crashed))
    assert [r["step"] for r in rb if "eval" not in r] == [1, 2, 3, 4, 5, 6]  # step 5 not logged twice
    assert [r.get("reward/mean") for r in ra] == [r.get("reward/mean") for r in rb]
    # a component's own state is checkpointed and restored: 4 RL steps × 6 roll-outs in both runs
    ends = [
        torch.load(d / "checkpoints" / "stage-1-rl" / "state.pt", weights_only=True)
        for d in (straight, crashed)
    ]
    assert [s["components"]["reward/3/length"] for s in ends] == [{"scored": 24}] * 2


def test_a_new_run_refuses_a_used_directory(tiny_model_dir, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(Exception, match="already holds a run"):
        train(*tiny_run(tiny_model_dir("qwen2_5_vl")), tmp_path)


def test_vidrl_eval_reports_accuracy(tiny_model_dir, synth_data, capsys):
    args = ["eval", str(tiny_model_dir("qwen2_5_vl")), str(synth_data), "--max-frames", "2", "--json"]
    assert main([*args, "--max-new-tokens", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 12 and 0 <= out["accuracy"] <= 1 and 0 <= out["miou"] <= 1
    assert {"accuracy/multiple_choice", "miou/temporal_grounding", "accuracy/grounded_qa"} <= set(out)


def test_vidrl_eval_with_tools_answers_by_tool_rollouts(tiny_model_dir, synth_data, tmp_path, capsys):
    args = ["eval", str(tiny_model_dir("qwen2_5_vl")), str(synth_data), "--max-frames", "2", "--json",
            "--max-new-tokens", "4", "--max-samples", "3", "--tools", "get_video_clip_frame",
            "--answers", str(tmp_path / "answers.jsonl")]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    answers = _lines(tmp_path / "answers.jsonl")
    assert out["n"] == len(answers) == 3 and all("calls" in a for a in answers)
    assert out["tools/calls"] == sum(len(a["calls"]) for a in answers) / 3  # a random model rarely calls
    assert main([*args[:-2], "--tools", "zoom"]) != 0
    assert "tools[0].name: unknown tool 'zoom'" in capsys.readouterr().err


class LetterA(vidrl.Reward):
    """Share of the response's characters that are "A": easy to learn, never saturated in a few steps."""

    name = "letter_a"

    def __call__(self, responses, samples):
        return [r.count("A") / max(1, len(r)) for r in responses]


class LetterAPlugin:
    @vidrl.hookimpl
    def register_rewards(self, register):
        register(LetterA)


def test_rl_alone_raises_an_easy_reward(tiny_model_dir, tmp_path):
    rl = {"steps": 24, "prompts_per_step": 2, "group_size": 6, "micro_batch_size": 12, "max_new_tokens": 8,
          "optim": {"lr": 1e-2}}  # fmt: skip
    raw = {
        "seed": 0,
        "model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
        "data": {"synth": {"train_videos": 4, "eval_videos": 1}, "max_frames": 2},
        "stages": [{"name": "rl", "options": rl}],
        "advantage": "grpo",
        "loss": "ppo_clip",
        "rewards": ["letter_a"],
        "log": {"progress": False},
        "eval": {"before": False, "after": False},
    }
    config, session = load_config(raw, extra_plugins=[(LetterAPlugin(), "test_letter_a")])
    train(config, session, tmp_path / "run")
    rewards = [r["reward/mean"] for r in _lines(tmp_path / "run" / "metrics.jsonl")]
    first, last = sum(rewards[:6]) / 6, sum(rewards[-6:]) / 6
    assert last > first + 0.1, rewards


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.yaml")))
def test_example_configs_are_valid(path):
    assert main(["validate", str(path)]) == 0


def test_reg_grpo_runs_end_to_end_with_a_lagged_old_policy(tiny_model_dir, tmp_path):
    config, session = tiny_run(
        tiny_model_dir("qwen2_5_vl"),
        stages=[
            {
                "name": "rl",
                "options": {
                    "steps": 2,
                    "prompts_per_step": 2,
                    "group_size": 3,
                    "micro_batch_size": 3,
                    "num_iterations": 2,
                    "max_new_tokens": 6,
                },
            }
        ],  # fmt: skip
        loss={"name": "reg_grpo", "options": {"beta": 0.1}},
        eval={"before": False, "after": False},
    )
    train(config, session, tmp_path / "run")
    rows = _lines(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) and r["kl"] >= 0 for r in rows)
    assert rows[0]["reg/rho_std"] > 0  # averaged over the two iterations: the second one's ρ is informative


def test_dynamic_sampling_needs_groups_that_can_differ(tiny_model_dir):
    rl = {"name": "rl", "options": {"group_size": 1, "micro_batch_size": 1, "dynamic_sampling": True}}
    with pytest.raises(vidrl.ConfigError, match="dynamic_sampling needs group_size >= 2"):
        tiny_run(tiny_model_dir("qwen2_5_vl"), stages=[rl])


def test_dynamic_sampling_trains_on_informative_groups_and_refills_from_the_feed(tiny_model_dir, tmp_path):
    options = {"steps": 3, "prompts_per_step": 2, "group_size": 3, "micro_batch_size": 6, "max_new_tokens": 6}
    rl = {"name": "rl", "options": {**options, "dynamic_sampling": True, "max_draws": 3}}
    config, session = tiny_run(tiny_model_dir("qwen2_5_vl"), stages=[rl], rewards=["half_length"],
                               eval={"before": False, "after": False})  # fmt: skip
    train(config, session, tmp_path / "run")
    rows = _lines(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 3 and all("time/refill" in r for r in rows)
    assert any(r["dynamic/batches"] > 1 for r in rows)  # some step drew further prompts
    for r in rows:  # the groups trained on that teach nothing are exactly the ones the cap filled in
        assert r["adv/zero_std_frac"] == pytest.approx(r["dynamic/filled_frac"])
        assert 1 <= r["dynamic/batches"] <= 3


def test_tensorboard_gets_scalars_a_completion_table_and_frame_strips(tiny_model_dir, tmp_path):
    """A short run with ``log.trackers: [tensorboard]``, its event file read back."""
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rl = {"name": "rl", "options": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "micro_batch_size": 4,
                                    "max_new_tokens": 4}}  # fmt: skip
    log = {"progress": False, "trackers": ["tensorboard"], "samples_every": 1, "num_samples": 3}
    config, session = tiny_run(tiny_model_dir("qwen2_5_vl"), stages=[rl], log=log,
                               eval={"before": False, "after": False})  # fmt: skip
    train(config, session, tmp_path / "run")
    events = EventAccumulator(
        str(tmp_path / "run" / "vidrl"), size_guidance={"images": 0, "tensors": 0}
    ).Reload()
    tags = events.Tags()
    assert {"reward/mean", "loss", "entropy", "truncated/frac", "response_length/max"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("reward/mean")] == [1, 2]
    table = events.Tensors("samples/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert (
        table.startswith("| sample | question | response | reward | advantage |") and table.count("\n") == 4
    )
    strips = {t: events.Images(t) for t in tags["images"] if t.startswith("frames/")}
    first = [t for t, images in strips.items() if images[0].step == 1]
    assert len(first) == 2  # the prompts of the 3 roll-outs logged at step 1 (2 roll-outs per prompt)
    png = Image.open(io.BytesIO(strips[first[0]][0].encoded_image_string))
    assert png.width == config.data.max_frames * png.height  # the clip's 2 square frames, side by side


def test_a_mixed_image_and_video_data_set_trains_and_evaluates(tiny_model_dir, synth_data, tmp_path):
    """SFT, RL and evaluation on a data set mixing video rows, image rows (one and two images)
    and a text-only row, batched together."""
    from PIL import Image

    videos = [json.loads(x) for x in synth_data.read_text().splitlines()][:4]
    for row in videos:
        row["video"] = str(synth_data.parent / row["video"])
    for k, colour in enumerate([(200, 20, 20), (20, 200, 20), (20, 20, 200)]):
        Image.new("RGB", (48 + 8 * k, 40), colour).save(tmp_path / f"img{k}.png")
    images = [
        {"id": "one-image", "question": "How many images?", "answer": "1", "task_type": "numeric",
         "images": [str(tmp_path / "img0.png")]},
        {"id": "two-images", "question": "How many images?", "answer": "2", "task_type": "numeric",
         "images": [str(tmp_path / "img1.png"), str(tmp_path / "img2.png")]},
        {"id": "text", "question": "Say yes.", "answer": "yes", "task_type": "free_form"},
    ]  # fmt: skip
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in videos + images))
    rl = {"steps": 2, "prompts_per_step": 7, "group_size": 2, "micro_batch_size": 7, "max_new_tokens": 4}
    stages = [{"name": "sft", "options": {"steps": 2, "batch_size": 7, "micro_batch_size": 7}},
              {"name": "rl", "options": rl}]  # fmt: skip
    mixed = {"train": str(data), "eval": str(data), "root": "/", "max_frames": 2}
    config, session = tiny_run(tiny_model_dir("qwen2_5_vl"), stages=stages, data=mixed)
    summary = train(config, session, tmp_path / "run")
    rows = [r for r in _lines(tmp_path / "run" / "metrics.jsonl") if "eval" not in r]
    assert [r["stage"] for r in rows] == ["sft", "sft", "rl", "rl"] and all(
        math.isfinite(r["loss"]) for r in rows
    )
    answers = _lines(tmp_path / "run" / "eval-after-answers.jsonl")
    assert [a["sample"] for a in answers] == [r["id"] for r in videos + images]  # every row answered
    assert summary["after"]["n"] == 7 and summary["after"]["skipped"] == 0


def test_difficulty_augmentation_runs_in_the_engine_and_its_buffer_is_checkpointed(tiny_model_dir, tmp_path):
    rl = {"steps": 4, "prompts_per_step": 3, "group_size": 3, "micro_batch_size": 3, "max_new_tokens": 6}
    config, session = tiny_run(
        tiny_model_dir("qwen2_5_vl"),
        stages=[{"name": "rl", "options": rl}],
        loss={"name": "reg_grpo", "options": {"beta": 0.0}},
        augmenters=[
            {"name": "difficulty_aug", "options": {"dead_band": 0.0, "easy": "mask", "hints": False}}
        ],
        eval={"before": False, "after": False},
    )
    train(config, session, tmp_path / "run")
    rows = _lines(tmp_path / "run" / "metrics.jsonl")
    assert rows[0]["aug/replaced_frac"] == 0  # an empty buffer: nothing to compare with
    assert max(r["aug/replaced_frac"] for r in rows[1:]) > 0
    assert {"aug/zero_std_before", "aug/zero_std_after", "difficulty_aug/hints"} <= set(rows[-1])
    assert sum(r["difficulty_aug/mask"] for r in rows) == sum(3 * r["aug/replaced_frac"] for r in rows)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-0000002" / "state.pt", weights_only=True)
    assert len(state["components"]["augmenter/0/difficulty_aug"]["buffer"]) == 6  # 2 steps × 3 prompts
    samples = _lines(tmp_path / "run" / "samples.jsonl")
    assert all("question" in s for s in samples)


def test_every_comparison_variant_is_a_valid_config():
    """benchmarks/algorithms/compare.py: each variant's overrides load onto its config; the
    comparisons that start from the cached base run one rl stage."""
    import importlib.util
    import sys

    from vidrl.config import read_yaml

    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location(
        "compare", root / "benchmarks" / "algorithms" / "compare.py"
    )
    compare = sys.modules["compare"] = importlib.util.module_from_spec(spec)  # its dataclass looks it up
    spec.loader.exec_module(compare)
    for name, c in compare.COMPARISONS.items():
        for variant, overrides in c.variants.items():
            config, _ = load_config(read_yaml(root / c.config), [*overrides, "seed=1", "data.synth.seed=1"])
            assert config.seed == 1, (name, variant)
            assert not c.on_base or [s.name for s in config.stages] == ["rl"], (name, variant)
    tools = compare.COMPARISONS["tools"]
    no_tools, tools = (
        load_config(read_yaml(root / tools.config), tools.variants[v])[0] for v in ("no_tools", "tools")
    )
    assert no_tools.tools == () and tools.tools and tools.stages == no_tools.stages  # the same budget


def _moved_share(run_dir, base_dir):
    """Share of the base model's weights that training changed (elements, all tensors)."""
    after, before = _params(run_dir), load_file(base_dir / "model.safetensors")
    changed = sum(int((after[k] != before[k]).sum()) for k in before)
    return changed / sum(v.numel() for v in before.values())


def test_bf16_mixed_keeps_float32_master_weights_so_small_updates_are_not_lost(tiny_model_dir, tmp_path):
    """At GRPO's learning rates pure bf16 weights barely move (an update below half a bf16 ulp
    rounds away); bf16-mixed autocasts the compute and keeps float32 weights, so they move as in
    fp32."""
    path = tiny_model_dir("qwen2_5_vl")
    sft = {
        "name": "sft",
        "options": {"steps": 3, "batch_size": 4, "micro_batch_size": 2, "optim": {"lr": 1e-6}},
    }
    shares = {}
    for precision in ("fp32", "bf16-mixed"):
        config, session = tiny_run(path, stages=[sft], eval={"before": False, "after": False},
                                   model={"path": str(path), "precision": precision})  # fmt: skip
        train(config, session, tmp_path / precision)
        shares[precision] = _moved_share(tmp_path / precision, path)
    assert shares["fp32"] > 0.5, shares
    assert shares["bf16-mixed"] > 0.9 * shares["fp32"], shares
    assert _params(tmp_path / "bf16-mixed")["lm_head.weight"].dtype == torch.float32


def test_lora_checkpoints_hold_adapters_and_resume_exactly(tiny_model_dir, tmp_path, monkeypatch):
    path = tiny_model_dir("qwen2_5_vl")
    model = {"path": str(path), "lora": {"r": 4, "merge": False}}
    straight = tmp_path / "straight"
    train(*tiny_run(path, model=model), straight)
    step = straight / "checkpoints" / "step-0000004" / "model"
    assert (step / "adapter_model.safetensors").is_file() and not (step / "model.safetensors").exists()

    original = StepLoop.end_step

    def crash_after_step_5(self, metrics, record=None):
        original(self, metrics, record)
        if self.state.global_step == 5:
            raise RuntimeError("simulated crash")

    crashed = tmp_path / "crashed"
    monkeypatch.setattr(StepLoop, "end_step", crash_after_step_5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(*tiny_run(path, model=model), crashed)
    monkeypatch.setattr(StepLoop, "end_step", original)
    train(*tiny_run(path, model=model), crashed, resume=True)
    a, b = (load_file(d / "model" / "adapter_model.safetensors") for d in (straight, crashed))
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert any(float(v.abs().sum()) > 0 for k, v in a.items() if "lora_B" in k)  # the adapters trained


def test_lora_final_model_is_merged_into_a_plain_model_directory(tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    path = tiny_model_dir("qwen2_5_vl")
    sft = {
        "name": "sft",
        "options": {"steps": 3, "batch_size": 4, "micro_batch_size": 2, "optim": {"lr": 1e-2}},
    }
    config, session = tiny_run(path, stages=[sft], model={"path": str(path), "lora": {"r": 4}},
                               eval={"before": False, "after": False})  # fmt: skip
    train(config, session, tmp_path / "run")
    out = tmp_path / "run" / "model"
    assert not (out / "adapter_config.json").exists()
    merged, base = (AutoModelForImageTextToText.from_pretrained(d).state_dict() for d in (out, path))
    assert merged.keys() == base.keys()
    changed = [k for k in base if not torch.equal(merged[k], base[k])]
    assert changed and all("language_model" in k and "proj" in k for k in changed)


def test_bf16_mixed_reference_matches_the_policy_before_any_update(tiny_model_dir, tmp_path):
    """The reference runs with the policy's numerics (float32 weights, bf16 autocast): log-probs
    equal at the stage's start, so the KL starts at 0."""
    from vidrl.engine.context import RunContext
    from vidrl.engine.rollout import given_responses, sequence_logprobs

    path = tiny_model_dir("qwen2_5_vl")
    config, session = tiny_run(path, model={"path": str(path), "precision": "bf16-mixed"})
    ctx = RunContext(config, session, tmp_path)
    policy, ref = ctx.policy(), ctx.reference()
    tok = policy.tokenizer
    tok.padding_side = "left"
    gen = given_responses(tok(["how many?", "colour of the square?"], return_tensors="pt", padding=True),
                          tok, ["<answer>2</answer>", "red"])  # fmt: skip
    with torch.no_grad():
        a, b = sequence_logprobs(policy.model, gen), sequence_logprobs(ref, gen)
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_lora_under_bf16_mixed_generates_under_autocast(tiny_model_dir, tmp_path):
    """peft's generate bypasses accelerate's wrapped forward; the inner model is wrapped too."""
    from vidrl.engine.context import RunContext

    path = tiny_model_dir("qwen2_5_vl")
    config, session = tiny_run(path, model={"path": str(path), "precision": "bf16-mixed", "lora": {"r": 4}})
    policy = RunContext(config, session, tmp_path).policy()
    q = next(m for n, m in policy.base.named_modules() if n.endswith("layers.0.self_attn.q_proj.base_layer"))
    dtypes = []
    q.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    ids = policy.tokenizer(["how many?"], return_tensors="pt")
    request = vidrl.RolloutRequest(
        dict(ids), 1, vidrl.Sampling(max_new_tokens=3), (policy.eos_id,), policy.pad_id
    )
    vidrl.HFGenerate().attach(policy.base).generate(request)
    assert dtypes and set(dtypes) == {torch.bfloat16}
