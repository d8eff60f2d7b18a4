"""The shared rewards on tricky strings, and their composition by task type."""

import math
import sys
import time

import pytest

import vidrl
from vidrl import Sample, Session
from vidrl.engine.scoring import RewardError, score

MC = Sample(
    id="mc", question="q", answer="B", task_type="multiple_choice", options=("red", "blue", "green", "cyan")
)
NUM = Sample(id="num", question="q", answer="3", task_type="numeric")
TG = Sample(id="tg", question="q", answer="2-4", task_type="temporal_grounding", span=(2.0, 4.0))
GQA = Sample(id="gqa", question="q", answer="blue", task_type="grounded_qa", span=(2.0, 4.0))
FREE = Sample(id="ff", question="q", answer="the red square moves left", task_type="free_form")


@pytest.fixture(scope="module")
def session():
    return Session().load()


def _r(session, name, **options):
    cls = session.registry("reward").get(name)
    return session.create("reward", name, cls.Config(**options))


def _a(body, think="ok"):
    return f"<think>{think}</think><answer>{body}</answer>"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_a("B"), 1.0),
        ("<think>\nx\n</think>\n\n<answer>B</answer>\n", 1.0),
        ("<answer>B</answer>", 0.0),  # missing think
        ("text <think>x</think><answer>B</answer>", 0.0),  # text outside the blocks
        ("<think>x</think><answer>B</answer><answer>C</answer>", 0.0),  # several answers
        ("<think>a<think>b</think></think><answer>B</answer>", 0.0),  # nested
        ("<think>x</think><tool_call>{}</tool_call><think>y</think><answer>B</answer>", 0.0),  # tools off
        ("<think>x<answer>B</answer></think>", 0.0),
    ],
)
def test_format(session, response, expected):
    assert _r(session, "format")([response], [MC]) == [expected]


def test_format_options(session):
    tools = "<think>x</think><tool_call>{}</tool_call><think>y</think><answer>B</answer>"
    assert _r(session, "format", tool_calls=True, score=0.5)([tools], [MC]) == [0.5]
    assert _r(session, "format", think=False)(["<answer>B</answer>", _a("B")], [MC, MC]) == [1.0, 1.0]
    bare = "<tool_call>{}</tool_call>\n<tool_call>{}</tool_call><answer>B</answer>"
    no_think = _r(session, "format", think=False, tool_calls=True)
    assert no_think([bare, tools, bare.replace("<answer>", "x<answer>")], [MC] * 3) == [1.0, 1.0, 0.0]
    assert _r(session, "format", tool_calls=True)([bare], [MC]) == [0.0]  # think on: each think required


@pytest.mark.parametrize(
    ("succeeded", "well_formed", "expected"),
    [(0, True, 1.0), (1, True, 1.5), (2, True, 2.0), (5, True, 2.0), (2, False, 0.0), (None, True, 1.0)],
)
def test_format_tool_bonus(session, succeeded, well_formed, expected):
    text = "<think>x</think><tool_call>{}</tool_call><think>y</think><answer>B</answer>"
    sample = MC if succeeded is None else MC.with_extra(vidrl.ToolResults(calls=5, succeeded=succeeded))
    reward = _r(session, "format", tool_calls=True, tool_bonus=0.5)
    assert reward([text if well_formed else "x" + text], [sample]) == [expected]
    assert _r(session, "format", tool_calls=True)([text], [sample]) == [1.0]  # tool_bonus 0: no bonus


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("B", 1.0),
        ("b", 0.0),
        ("B. blue", 1.0),
        ("(B)", 1.0),
        ("A or B", 0.0),
        ("C", 0.0),
        ("Blue", 0.0),
        ("E", 0.0),
        ("B B", 1.0),
    ],  # fmt: skip
)
def test_multiple_choice(session, body, expected):
    assert _r(session, "multiple_choice")([_a(body)], [MC]) == [expected]


def test_multiple_choice_without_answer_block(session):
    assert _r(session, "multiple_choice")(["B"], [MC]) == [0.0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [("3", 1.0), ("3.04", 1.0), ("3.4", 0.5), ("2.6", 0.5), ("4", 0.0), ("3 or 4", 0.0), ("", 0.0)],
)
def test_numeric(session, body, expected):
    assert _r(session, "numeric")([_a(body)], [NUM]) == [expected]


def test_mra(session):
    ten = Sample(id="n", question="q", answer="10", task_type="numeric")
    # |11 - 10| / 10 = 0.1 ≤ 1 − θ for θ ≤ 0.9: 9 of 10 thresholds
    assert _r(session, "mra")([_a("11"), _a("10"), _a("16"), _a("x")], [ten] * 4) == pytest.approx(
        [0.9, 1.0, 0.0, 0.0]
    )
    zero = Sample(id="z", question="q", answer="0", task_type="numeric")
    assert _r(session, "mra")([_a("0"), _a("0.1")], [zero, zero]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [("2-4", 1.0), ("[3.0, 5.0]", 1 / 3), ("4-2", 0.0), ("soon", 0.0), ("5 to 6 s", 0.0)],
)
def test_temporal_iou(session, body, expected):
    assert _r(session, "temporal_iou")([_a(body)], [TG]) == [pytest.approx(expected)]


def test_temporal_iou_cut(session):
    cut = _r(session, "temporal_iou", alpha=0.2, beta=0.8)
    # IoU 1/3 → (1/3 − 0.2) / 0.6; IoU 1 → 1; IoU 0.1 → 0
    got = cut([_a("[3, 5]"), _a("2-4"), _a("3.8-5.8")], [TG] * 3)
    assert got == pytest.approx([(1 / 3 - 0.2) / 0.6, 1.0, 0.0])
    with pytest.raises(ValueError, match="need 0 <= alpha < beta <= 1"):
        session.registry("reward").get("temporal_iou").Config(alpha=0.5, beta=0.5)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("blue, 2-4", 2.0),
        ("Blue (2 to 4 s)", 2.0),
        ("red, 2-4", 1.0),
        ("blue", 1.0),
        ("blue, 3-5", 1 + 1 / 3),
    ],
)
def test_grounded_qa_counts_both_parts(session, body, expected):
    assert _r(session, "grounded_qa")([_a(body)], [GQA]) == [pytest.approx(expected)]


def test_rouge(session):
    exact, partial, none = _r(session, "rouge")(
        [_a("The red square moves left"), _a("red square moves"), _a("green")], [FREE] * 3
    )
    assert exact == pytest.approx(1.0) and none == 0.0
    # R1: 3 of 5 ref, 3 of 3 pred → 0.75; R2: 2 of 4, 2 of 2 → 2/3; L: LCS 3 → 0.75
    assert partial == pytest.approx((0.75 + 2 / 3 + 0.75) / 3)


def test_rouge_stems_words_like_the_papers_scorer(session):
    """With the Porter stemmer (the default, Video-R1's), "squares moving" matches "square moves"."""
    cls = session.registry("reward").get("rouge")
    stemmed, plain = (
        cls(cls.Config(stemmer=s))([_a("red squares moving")], [FREE])[0] for s in (True, False)
    )
    assert stemmed == pytest.approx((0.75 + 2 / 3 + 0.75) / 3) and plain == pytest.approx(
        (0.25 + 0 + 0.25) / 3
    )


@pytest.mark.parametrize(
    ("said", "truth", "expected"),
    [
        ("\\frac{1}{2}", "0.5", 1.0), ("0.5", "1/2", 1.0), ("\\sqrt{2}", "2^{1/2}", 1.0),
        ("50\\%", "0.5", 1.0), ("x+1", "1+x", 1.0), ("\\{1,2\\}", "\\{2,1\\}", 1.0), ("5 cm", "5", 1.0),
        ("1,000", "1000", 1.0),
        ("2\\pi", "6.283185", 1.0), ("3", "4", 0.0), ("\\frac{1}{3}", "0.33", 0.0), ("x-1", "1-x", 0.0),
    ],
)  # fmt: skip
def test_math_judges_equal_values_written_differently(session, said, truth, expected):
    sample = Sample(id="m", question="q", answer=truth, task_type="numeric")
    assert _r(session, "math")([_a(said)], [sample]) == [expected]


def test_math_without_an_answer_block_scores_zero_and_needs_its_extra(session, monkeypatch):
    sample = Sample(id="m", question="q", answer="2", task_type="numeric")
    assert _r(session, "math")(["2", "<answer></answer>"], [sample] * 2) == [0.0, 0.0]
    monkeypatch.setitem(sys.modules, "math_verify", None)  # not installed
    with pytest.raises(ValueError, match=r"needs math-verify: pip install 'vidrl\[math\]'"):
        session.registry("reward").get("math").Config()


class Slow(vidrl.Reward):
    name = "slow"
    timeout_s = 0.2

    def __call__(self, responses, samples):
        time.sleep(5)
        return [1.0] * len(responses)


def test_a_reward_that_does_not_return_in_time_is_a_named_error_not_a_hung_run():
    t = time.perf_counter()
    with pytest.raises(
        RewardError, match=r"reward 'slow' \(not registered\) did not return within 0.2 s on samples \[mc"
    ):
        score([("slow", 1.0, Slow())], ["a"], [MC])
    assert time.perf_counter() - t < 2


class OwnTimeout(vidrl.Reward):
    name = "own_timeout"

    def __call__(self, responses, samples):
        raise TimeoutError("the remote grader timed out")


def test_a_rewards_own_timeout_error_is_its_error_not_the_scorers_limit():
    with pytest.raises(
        RewardError, match=r"raised on samples \[mc.*TimeoutError: the remote grader timed out"
    ):
        score([("t", 1.0, OwnTimeout())], ["a"], [MC])


def test_the_config_sets_a_rewards_timeout(tiny_model_dir, tmp_path):
    from vidrl.engine.context import RunContext

    rewards = [{"name": "format", "timeout": 30}, {"name": "numeric", "timeout": 0}, "multiple_choice"]
    raw = {"model": {"path": str(tiny_model_dir("qwen2_5_vl"))}, "advantage": "grpo", "loss": "ppo_clip",
           "stages": [{"name": "rl"}], "rewards": rewards}  # fmt: skip
    config, session = vidrl.load_config(raw)
    rewards = RunContext(config, session, tmp_path).algorithm().rewards
    assert [r.timeout_s for _, _, r in rewards] == [30, None, 600.0]
    with pytest.raises(vidrl.ConfigError, match="timeout must be >= 0"):
        vidrl.load_config({**raw, "rewards": [{"name": "format", "timeout": -1}]})


def test_score_routes_rewards_by_task_type(session):
    specs = [("format", 0.5, _r(session, "format")), ("mc", 1.0, _r(session, "multiple_choice")),
             ("count", 1.0, _r(session, "numeric"))]  # fmt: skip
    out = score(specs, [_a("B"), _a("3"), "<answer>C</answer>"], [MC, NUM, MC])
    assert out.total.tolist() == [1.5, 1.5, 0.0]
    assert out.per_reward["mc"].tolist()[0] == 1.0 and math.isnan(out.per_reward["mc"][1])
    # per-reward means are of the raw scores (before weights), over the samples each applies to
    assert out.means() == {"reward/format": pytest.approx(2 / 3), "reward/mc": 0.5, "reward/count": 1.0}


class Picky(vidrl.Reward):
    """Declines ("no opinion") to score responses without an answer tag."""

    name = "picky"

    def __call__(self, responses, samples):
        return [None if "<answer>" not in r else 1.0 for r in responses]


def test_a_reward_may_decline_and_a_sample_no_reward_scores_is_unscored(session):
    specs = [("picky", 1.0, Picky()), ("count", 2.0, _r(session, "numeric"))]
    out = score(specs, [_a("B"), "no tag", "no tag"], [MC, MC, NUM])
    assert out.total.tolist() == [1.0, 0.0, 0.0]  # row 2: numeric scored it 0
    assert math.isnan(out.per_reward["picky"][1]) and out.scored.tolist() == [True, False, True]
    est = out.for_estimator()
    assert est[0] == 1.0 and math.isnan(est[1]) and est[2] == 0.0
    assert out.means() == {"reward/picky": 1.0, "reward/count": 0.0}


class Broken(vidrl.Reward):
    name = "broken"

    def __call__(self, responses, samples):
        return [float("nan") if "nan" in r else 1 / 0 if "boom" in r else 1.0 for r in responses]


def test_failing_rewards_name_themselves_and_the_sample():
    with pytest.raises(RewardError, match=r"reward 'b' \(not registered\) returned nan for sample 'num'"):
        score([("b", 1.0, Broken())], ["ok", "nan"], [MC, NUM])
    with pytest.raises(
        RewardError, match=r"reward 'b' \(not registered\) raised on samples \[mc, num.*ZeroDivisionError"
    ):
        score([("b", 1.0, Broken())], ["ok", "boom"], [MC, NUM])


def test_grounding_rewards_need_a_span(session):
    no_span = Sample(id="x", question="q", answer="1-2", task_type="temporal_grounding")
    with pytest.raises(
        RewardError, match=r"reward 'iou' \(plugin 'rewards'\) raised.*sample 'x' has no ground-truth span"
    ):
        score([("iou", 1.0, _r(session, "temporal_iou"))], [_a("1-2")], [no_span])
