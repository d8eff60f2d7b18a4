"""Parsing untrusted model output."""

import pytest

from vidrl import text


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>x</think><answer> B </answer>", "B"),
        ("<answer>A</answer><answer>B</answer>", None),  # several answers: ambiguous
        ("<answer>A", None),
        ("no tags at all", None),
        ("<answer>多语言 ✓</answer>", "多语言 ✓"),
        ("<answer></answer>", ""),
        ("<answer>a <answer>b</answer>", None),
    ],
)
def test_extract_answer(response, expected):
    assert text.extract_answer(response) == expected


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("1.5-3", (1.5, 3.0)),
        ("[1.5, 3.0]", (1.5, 3.0)),
        ("1.5 to 3 seconds", (1.5, 3.0)),
        ("from 2s to 4s", (2.0, 4.0)),
        ("0.5 – 2.25", (0.5, 2.25)),
        ("3-1", None),
        ("3.0-3.0", None),
        ("none", None),
        (None, None),
        ("1e1 to 2e1", (10.0, 20.0)),
    ],  # fmt: skip
)
def test_parse_span(s, expected):
    assert text.parse_span(s) == expected


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("about 3.5 squares", 3.5),
        ("3 or 4", None),
        ("1,000", 1000.0),
        ("-2", -2.0),
        ("", None),
        (None, None),
        ("٣", 3.0),  # any Unicode decimal digit reads as that digit
    ],  # fmt: skip
)
def test_parse_number(s, expected):
    assert text.parse_number(s) == expected


def test_temporal_iou():
    assert text.temporal_iou((1.0, 3.0), (2.0, 4.0)) == pytest.approx(1 / 3)
    assert text.temporal_iou((0.0, 1.0), (2.0, 4.0)) == 0.0
    assert text.temporal_iou((2.0, 4.0), (2.0, 4.0)) == 1.0
    assert text.temporal_iou(None, (2.0, 4.0)) == 0.0


def test_normalize_and_remove_span():
    assert text.normalize("  Blue!, ") == "blue"
    assert text.normalize(text.remove_span("blue, 1.5-3.0 s")) == "blue"
