"""The built-in judges: output parsing, batching of the LM judge, and the answer-in-reasoning rule."""

import pytest

import vidrl
from vidrl.plugins.judges import AnswerInReasoning, CausalLMJudge, parse_verdict


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Consistent", (True, True)),
        (" consistent.", (True, True)),
        ("Inconsistent - the count differs", (False, True)),
        ("INCONSISTENT", (False, True)),
        ("**Consistent**", (True, True)),
        ("It is consistent", (False, False)),  # the first word decides
        ("not consistent", (False, False)),
        ("", (False, False)),
        ("Consistently wrong", (False, False)),
    ],
)
def test_parse_verdict(output, expected):
    assert parse_verdict(output) == expected


def test_the_lm_judge_batches_like_one_at_a_time():
    items = [vidrl.JudgeItem("How many squares?", "I see " + "two " * i, str(i)) for i in range(5)]
    batched = CausalLMJudge(CausalLMJudge.Config(model="tiny", batch_size=3, max_new_tokens=4))(items)
    single = CausalLMJudge(CausalLMJudge.Config(model="tiny", batch_size=1, max_new_tokens=4))(items)
    assert [j.output for j in batched] == [j.output for j in single] and len(batched) == 5
    for j in batched:  # a verdict is what its output parses to; unparseable means Inconsistent
        assert (j.consistent, j.parsed) == parse_verdict(j.output)


def test_the_lm_judge_loads_once_and_closes():
    judge = CausalLMJudge(CausalLMJudge.Config(model="tiny"))
    model, _ = judge.load()
    assert judge.load()[0] is model
    judge.close()
    assert judge.load()[0] is not model


@pytest.mark.parametrize(
    "bad", [{"model": ""}, {"model": "m", "template": "{question}"}, {"model": "m", "dtype": "int8"}]
)
def test_lm_judge_options_are_checked(bad):
    with pytest.raises(ValueError):
        CausalLMJudge.Config(**bad)


def test_answer_in_reasoning():
    judge = AnswerInReasoning()
    items = [
        vidrl.JudgeItem("q", "I count 4 coloured squares.", "4"),
        vidrl.JudgeItem("q", "I count 4 coloured squares.", "2"),
        vidrl.JudgeItem("q", "I count 14 squares.", "4"),  # whole words only
        vidrl.JudgeItem("q", "The answer is B.", "b"),
        vidrl.JudgeItem("q", "", "4"),
        vidrl.JudgeItem("q", "I count 4.", ""),
    ]
    assert [j.consistent for j in judge(items)] == [True, False, False, True, False, False]


def test_judges_are_configured_by_name():
    judge = {"name": "causal_lm", "options": {"model": "tiny"}}
    raw = {"stages": [{"name": "veripo", "options": {"judge": judge}}],
           "advantage": "grpo", "loss": "ppo_clip", "rewards": ["numeric"]}  # fmt: skip
    config, session = vidrl.load_config(raw)
    spec = config.stages[0].options.judge
    assert session.create("judge", spec.name, spec.options).config.model == "tiny"
    raw["stages"][0]["options"]["judge"] = "llm"
    with pytest.raises(vidrl.ConfigError, match=r"stages\[0\]\.options\.judge\.name: unknown judge 'llm'"):
        vidrl.load_config(raw)
    raw["stages"][0]["options"]["judge"] = {"name": "causal_lm"}
    with pytest.raises(vidrl.ConfigError, match=r"judge\.options\.model: required field is missing"):
        vidrl.load_config(raw)
    raw["stages"][0]["options"].update(judge=None, grpo={"name": "rl", "options": {"group_sise": 4}})
    with pytest.raises(vidrl.ConfigError, match=r"grpo\.options\.group_sise: unknown key"):
        vidrl.load_config(raw)
