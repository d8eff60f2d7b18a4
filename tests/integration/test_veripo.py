"""The veripo loop stage on the tiny model: every phase runs and leaves its files and
checkpoints, DPO's reference is the policy at the end of the GRPO phase before it, and a crash
in the middle of an iteration resumes exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

import vidrl
from vidrl import load_config
from vidrl.engine.loop import StepLoop
from vidrl.engine.pipeline import train

pytestmark = pytest.mark.slow
TEMPLATE = "<think>The answer is {answer}.</think><answer>{answer}</answer>"


class AnswerNamed(vidrl.Judge):
    """Consistent when the final answer appears in the reasoning: a deterministic stand-in."""

    name = "answer_named"

    def __call__(self, items):
        return [vidrl.Judgement(bool(i.answer) and i.answer in i.reasoning, "", True) for i in items]


class JudgePlugin:
    @vidrl.hookimpl
    def register_judges(self, register):
        register(AnswerNamed)


@pytest.fixture(scope="module")
def warm_model(tiny_model_dir, synth_data, tmp_path_factory):
    """The tiny model after a supervised warm-up on reasoning + answer (so that roll-outs are
    sometimes right and some groups have something to prefer)."""
    run = tmp_path_factory.mktemp("warm") / "run"
    raw = {
        "model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
        "data": {"train": str(synth_data), "max_frames": 2},
        "stages": [{"name": "sft", "options": {"steps": 40, "batch_size": 12, "micro_batch_size": 12,
                                               "template": TEMPLATE, "optim": {"lr": 3e-3}}}],
        "log": {"progress": False, "plot": False},
        "eval": {"before": False, "after": False},
    }  # fmt: skip
    train(*load_config(raw), run)
    return run / "model"


def veripo_run(model, data, iterations=2):
    raw = {
        "seed": 5,
        "model": {"path": str(model)},
        "data": {"train": str(data), "max_frames": 2},
        "stages": [{"name": "veripo", "options": {
            "iterations": iterations,
            "grpo": {"name": "rl", "options": {"steps": 3, "prompts_per_step": 4, "group_size": 4,
                                               "micro_batch_size": 8, "max_new_tokens": 24}},
            "dpo": {"name": "dpo", "options": {"steps": 3, "batch_size": 4, "micro_batch_size": 4,
                                               "optim": {"lr": 1e-4}}},
            "judge": "answer_named",
            "prune_share": 0.5,
        }}],
        "advantage": "grpo",
        "loss": "ppo_clip",
        "rewards": [{"name": "format", "weight": 0.5}, "multiple_choice", "numeric", "temporal_iou",
                    "grounded_qa"],
        "checkpoint": {"every": 1, "keep": 2},
        "log": {"progress": False, "plot": False},
        "eval": {"before": False, "after": False, "between_stages": False},
    }  # fmt: skip
    return load_config(raw, extra_plugins=[(JudgePlugin(), "test_judge")])


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(warm_model, synth_data, tmp_path_factory):
    """A two-iteration loop run without interruption."""
    run = tmp_path_factory.mktemp("veripo") / "run"
    train(*veripo_run(warm_model, synth_data), run)
    return run


def test_the_loop_runs_every_phase(straight):
    run = straight
    ckpts = {p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("stage-")}
    assert ckpts == {
        "stage-0.0-grpo0",
        "stage-0.2-dpo0",
        "stage-0.3-grpo1",
        "stage-0.5-dpo1",
        "stage-0-veripo",
    }
    metrics = _lines(run / "metrics.jsonl")
    stages = [m["stage"] for m in metrics]
    assert stages == ["veripo/grpo0"] * 3 + ["veripo/verify0"] + ["veripo/dpo0"] * 3 + \
        ["veripo/grpo1"] * 3 + ["veripo/verify1"] + ["veripo/dpo1"] * 3  # fmt: skip
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 13))
    # each DPO phase starts from its reference, the policy at the end of the GRPO phase before it
    for first in (metrics[4], metrics[11]):
        assert first["dpo/margin"] == pytest.approx(0.0, abs=1e-5)
    for k in (0, 1):
        d = run / "veripo" / "stage-0" / f"iter-{k}"
        verdicts = _lines(d / "verdicts.jsonl")
        assert len(verdicts) == len(_lines(d / "rollouts-0.jsonl")) == 3 * 4 * 4
        pairs = _lines(d / "pairs.jsonl")
        summary = next(m for m in metrics if m["stage"] == f"veripo/verify{k}")
        assert summary["veripo/pairs/total"] == len(pairs) > 0
        for p in pairs:  # every pair says why it exists
            assert p["chosen_verdict"]["passes"] and not p["rejected_verdict"]["passes"]
            failed = p["rejected_verdict"]["failed"]
            if p["pair_type"] == "reflection":  # the uncorrected wrong attempt
                assert "accuracy" in failed and len(p["chosen_from"]) == 2
            else:
                assert ("consistency" in failed) == (p["pair_type"] == "consistency")
        nxt = json.loads((d / "prompts-next.json").read_text())
        assert len(nxt["dropped"]) == int(len(nxt["easy"]) * 0.5 + 0.5)
    pool1 = json.loads((run / "veripo" / "stage-0" / "iter-0" / "prompts-next.json").read_text())["kept"]
    assert {r["prompt"] for r in _lines(run / "veripo" / "stage-0" / "iter-1" / "rollouts-0.jsonl")} <= set(
        pool1
    )


@pytest.mark.parametrize("crash_in", ["veripo/dpo0", "veripo/grpo1"])
def test_a_crash_inside_an_iteration_resumes_exactly(
    straight, warm_model, synth_data, tmp_path, monkeypatch, crash_in
):
    crashed = tmp_path / "crashed"

    original = StepLoop.end_step

    def crash(self, metrics, record=None):
        original(self, metrics, record)
        if self.state.stage == crash_in and self.state.step == 2:  # its step-2 checkpoint is the newest
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(StepLoop, "end_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(*veripo_run(warm_model, synth_data), crashed)
    monkeypatch.setattr(StepLoop, "end_step", original)
    train(*veripo_run(warm_model, synth_data), crashed, resume=True)

    a, b = (load_file(d / "model" / "model.safetensors") for d in (straight, crashed))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    for name in (
        "iter-0/rollouts-0.jsonl",
        "iter-0/pairs.jsonl",
        "iter-1/rollouts-0.jsonl",
        "iter-1/pairs.jsonl",
    ):
        assert _lines(straight / "veripo/stage-0" / name) == _lines(crashed / "veripo/stage-0" / name), name
    ma, mb = (_lines(d / "metrics.jsonl") for d in (straight, crashed))
    drop = ("time/",)
    assert [{k: v for k, v in m.items() if not k.startswith(drop)} for m in ma] == [
        {k: v for k, v in m.items() if not k.startswith(drop)} for m in mb
    ]
