"""Judging greedy answers per task type, and the summary over a data set."""

import pytest

from vidrl import Sample
from vidrl.engine.evaluation import grade, summarize

MC = Sample("m", "q", "B", "multiple_choice", options=("red", "blue", "green", "cyan"))
NUM = Sample("n", "q", "3", "numeric")
TG = Sample("t", "q", "1-3", "temporal_grounding", span=(1.0, 3.0))
GQA = Sample("g", "q", "blue", "grounded_qa", span=(2.0, 4.0))
FREE = Sample("f", "q", "A red square.", "free_form")


@pytest.mark.parametrize(
    ("response", "sample", "expected"),
    [
        ("<answer>B</answer>", MC, (1.0, None)),
        ("<answer>B. blue</answer>", MC, (1.0, None)),
        ("<answer>A or B</answer>", MC, (0.0, None)),  # two letters: not an answer
        ("B", MC, (0.0, None)),  # no answer block
        ("<answer>E</answer>", MC, (0.0, None)),  # not an option
        ("<answer>3 squares</answer>", NUM, (1.0, None)),
        ("<answer>3.5</answer>", NUM, (0.0, None)),
        ("<answer>2-3</answer>", TG, (None, 0.5)),
        ("<answer>3-1</answer>", TG, (None, 0.0)),  # reversed span is not swapped
        ("<answer>blue, 2.0-4.0</answer>", GQA, (1.0, 1.0)),
        ("<answer>red 3-4</answer>", GQA, (0.0, 0.5)),
        ("<answer>a RED square</answer>", FREE, (1.0, None)),
        ("<answer>blüe</answer>", FREE, (0.0, None)),
    ],
)
def test_grade(response, sample, expected):
    assert grade(response, sample) == expected


def test_summary_per_task_and_overall():
    judged = [(MC, 1.0, None), (MC, 0.0, None), (NUM, 1.0, None), (TG, None, 0.25), (GQA, 1.0, 0.75)]
    out = summarize(judged)
    assert out == {
        "n": 5.0,
        "accuracy": 0.75,
        "accuracy/grounded_qa": 1.0,
        "accuracy/multiple_choice": 0.5,
        "accuracy/numeric": 1.0,
        "miou": 0.5,
        "miou/grounded_qa": 0.75,
        "miou/temporal_grounding": 0.25,
    }


@pytest.mark.parametrize(
    ("response", "sample", "plain", "auto"),
    [
        ("B", MC, (1.0, None), (1.0, None)),
        ("(B) blue", MC, (1.0, None), (1.0, None)),
        ("The best answer is B.", MC, (1.0, None), (1.0, None)),
        ("C. green", MC, (0.0, None), (0.0, None)),
        ("<answer>B</answer>", MC, (1.0, None), (1.0, None)),  # plain: the one letter standing alone
        ("There are 3 squares.", NUM, (1.0, None), (1.0, None)),
        ("From 1 to 3 seconds.", TG, (None, 1.0), (None, 1.0)),
        ("a red square", FREE, (1.0, None), (1.0, None)),
        ("<answer>A</answer> B", MC, (0.0, None), (0.0, None)),  # plain: two letters; auto: the block
    ],
)
def test_plain_and_auto_grading_read_benchmark_style_replies(response, sample, plain, auto):
    assert grade(response, sample, "plain") == plain and grade(response, sample, "auto") == auto


def test_an_article_is_not_an_option_letter():
    from vidrl import text

    assert text.parse_letter("A man opens the door, so the answer is C.") is None  # two letters: none
    assert [text.parse_letter(s) for s in ("(B) blue", "B red", "B:", "C")] == ["B", "B", "B", "C"]


def test_unknown_grading():
    with pytest.raises(ValueError, match="unknown grading 'letter'; valid: answer_tag, plain, auto"):
        grade("B", MC, "letter")


def test_summary_per_benchmark_category():
    a = Sample("a", "q", "B", "multiple_choice", metadata={"category": "Counting Problem"})
    b = Sample("b", "q", "B", "multiple_choice", metadata={"category": "Temporal Reasoning"})
    out = summarize([(a, 1.0, None), (a, 0.0, None), (b, 1.0, None), (NUM, 0.0, None)])
    assert out["accuracy"] == 0.5 and out["accuracy/multiple_choice"] == pytest.approx(2 / 3)
    assert (
        out["accuracy/category/Counting Problem"] == 0.5
        and out["accuracy/category/Temporal Reasoning"] == 1.0
    )


def test_summary_of_nothing():
    assert summarize([]) == {"n": 0.0}
