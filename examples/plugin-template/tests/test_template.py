"""Run with the plugin installed (pip install -e .): it is found through its entry point. Each
component passes vidrl's conformance suite for its kind, and its own numbers are checked."""

import pytest
import torch

import vidrl
import vidrl.testing as vt

SESSION = vidrl.Session(strict=True).load()
COMPONENTS = [
    ("advantage", "median_baseline"),
    ("loss", "reinforce"),
    ("reward", "concise"),
    ("augmenter", "think_harder"),
    ("tool", "video_length"),
    ("stage", "checkpoint_eval"),
    ("judge", "shows_work"),
]


def test_plugin_is_discovered_and_registers_every_component():
    assert SESSION.plugins["template"].distribution == "vidrl-template"
    for kind, name in COMPONENTS:
        assert SESSION.registry(kind).owner(name) == "template"


@pytest.mark.parametrize(("kind", "name"), COMPONENTS)
def test_conformance(kind, name):
    vt.check_component(SESSION, kind, name)


def test_median_baseline_values():
    est = SESSION.create("advantage", "median_baseline")
    out = est(torch.tensor([0.0, 1.0, 9.0, 2.0, 2.0]), torch.tensor([0, 0, 0, 1, 1]))
    assert out.advantages.tolist() == [-1.0, 0.0, 8.0, 0.0, 0.0]
    assert out.zero_std.tolist() == [False, True]


def test_reinforce_matches_its_formula():
    inputs = vt.loss_inputs((2, 3), t=4, old=False, ref=False)
    out = SESSION.create("loss", "reinforce")(inputs)
    expected = -(inputs.advantages[:, None] * inputs.logprobs * inputs.mask).sum() / inputs.step_tokens
    torch.testing.assert_close(out.loss, expected)
    assert SESSION.create("loss", "reinforce").needs() == frozenset()  # no old log-probs computed


def test_concise_reward_values():
    reward = SESSION.create(
        "reward", "concise", SESSION.registry("reward").get("concise").Config(max_words=4)
    )
    sample = vidrl.Sample(id="s", question="q", answer="a")
    assert reward(["", "a b", "a b c d e"], [sample] * 3) == [1.0, 0.5, 0.0]


def test_think_harder_rewrites_only_failed_prompts():
    aug = SESSION.create("augmenter", "think_harder")
    batch = vt.augment_input(group_means=(0.0, 0.9, 0.2))
    out = aug(batch)
    assert sorted(out) == [0, 2] and out[0].sample.question.endswith("before you answer.")
    assert out[2].sample.extra(vidrl.Augmentation).by == "think_harder" and aug.state_dict() == {
        "rewritten": 2
    }


def test_video_length_answers_and_refuses():
    tools = {"video_length": SESSION.create("tool", "video_length")}
    ok = vidrl.call_tool(
        tools, vidrl.ToolCall("video_length", {"unit": "minutes"}), vt.tool_context(duration=90.0)
    )
    assert ok.ok and ok.text == "The video lasts 1.50 minutes."
    bad = vidrl.call_tool(tools, vidrl.ToolCall("video_length", {"unit": "hours"}), vt.tool_context())
    assert not bad.ok and "unit must be one of seconds, minutes" in bad.text


def test_checkpoint_eval_runs_one_evaluation():
    class Context:  # the one StageContext member this stage uses
        labels = []

        def evaluate(self, label):
            self.labels.append(label)

    context = Context()
    SESSION.create("stage", "checkpoint_eval").run(context)
    assert context.labels == ["checkpoint"]
    assert SESSION.create("stage", "checkpoint_eval").check(vidrl.RunConfig()) == []


def test_shows_work_judge():
    judge = SESSION.create("judge", "shows_work")
    items = [vidrl.JudgeItem("q", "I count two squares: 2", "2"), vidrl.JudgeItem("q", "two", "2")]
    assert [j.consistent for j in judge(items)] == [True, False]
