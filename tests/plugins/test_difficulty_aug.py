"""Difficulty-aware augmentation: buffer arithmetic, Δ and the dead band, hints that never leak
the answer, noise and masking bounds, the state round-trip, and the engine's augment phase."""

import pytest
import torch

import vidrl
from vidrl import Sample, Session
from vidrl.plugins.difficulty_aug import ReplayBuffer, add_noise, hint_prefix, mask_frames, reasoning_steps

MC = Sample("m", "Which colour is first?", "B", "multiple_choice", options=("red", "blue", "green", "cyan"))
NUM = Sample("n", "How many squares?", "4", "numeric")


def _aug(**options):
    cls = Session().load().registry("augmenter").get("difficulty_aug")
    return cls(cls.Config(**options))


def _frames(n=6, value=128):
    info = vidrl.VideoInfo(num_frames=n, fps=8.0, width=4, height=4)
    return vidrl.Frames(torch.full((n, 4, 4, 3), value, dtype=torch.uint8), torch.arange(n) / 8.0,
                        torch.arange(n), info)  # fmt: skip


def test_buffer_keeps_the_last_window_values():
    b = ReplayBuffer(3)
    assert b.mean() is None
    b.push([1.0, 2.0])
    assert b.mean() == 1.5
    b.push([3.0, 4.0, 5.0])
    assert list(b.values) == [3.0, 4.0, 5.0] and b.mean() == 4.0


def test_reasoning_steps_strip_answers_and_tags():
    trace = "<think>First a red square. Then a blue one!\nSo it is blue.</think> <answer>B</answer>"
    assert reasoning_steps(trace) == ["First a red square.", "Then a blue one!", "So it is blue."]
    assert reasoning_steps("I count. <answer>4</answer> more") == ["I count."]


@pytest.mark.parametrize(
    ("trace", "sample", "level", "expected"),
    [
        # the steps naming the right option's text ("blue") or letter never appear
        (
            "<think>A red square comes first. No wait. It is blue. So B.</think><answer>B</answer>",
            MC,
            3,
            "A red square comes first. No wait.",
        ),
        ("<think>One. Two. Three. Four squares in all.</think><answer>4</answer>", NUM, 1, "One."),
        ("<think>One. Two. Three.</think><answer>4</answer>", NUM, 9, "One. Two."),  # never all n steps
        ("<think>It is 4.</think><answer>4</answer>", NUM, 1, None),  # nothing safe to reveal
        ("<answer>4</answer>", NUM, 2, None),
    ],
)
def test_hint_prefix(trace, sample, level, expected):
    assert hint_prefix(trace, sample, level, steps_per_level=1) == expected
    if expected:
        assert "4" not in expected.split() and "blue" not in expected.lower() and "<answer>" not in expected


def test_noise_stays_in_range_and_grows_with_sigma():
    torch.manual_seed(0)
    f = _frames(value=250)
    small, large = add_noise(f, 0.01), add_noise(f, 0.3)
    for out in (small, large):
        assert out.pixels.dtype == torch.uint8 and out.pixels.shape == f.pixels.shape
    assert (small.pixels.float() - 250).abs().mean() < (large.pixels.float() - 250).abs().mean()
    assert large.pixels.max() == 255  # clamped, not wrapped
    assert f.pixels.eq(250).all()  # the input is untouched


def test_masking_blacks_out_some_frames_never_all():
    torch.manual_seed(0)
    out = mask_frames(_frames(n=4), 0.99)
    black = out.pixels.flatten(1).eq(0).all(1)
    assert int(black.sum()) == 3
    assert int(mask_frames(_frames(n=4), 0.01).pixels.flatten(1).eq(0).all(1).sum()) == 1


def _input(means, rewards, clips=None, regenerate=None):
    samples = [NUM] * len(means)
    texts = [["<answer>1</answer>"] * len(r) for r in rewards]
    regenerate = regenerate or (lambda ss, cs: ([["x"]] * len(ss), [[0.0]] * len(ss)))
    return vidrl.AugmentInput(samples, clips or [_frames()] * len(means), means, texts, rewards, regenerate)


def test_no_buffer_no_augmentation_then_delta_decides():
    aug = _aug(dead_band=0.2)
    assert aug(_input([0.5, 0.5], [[0, 1], [0, 1]])) == {}
    aug.observe([NUM, NUM], [0.5, 0.5])  # buffer mean 0.5

    def regenerate(ss, cs):
        assert all("The correct answer is 4" in s.question for s in ss)
        return [["<think>One. Two. Three. So 4.</think><answer>4</answer>", "bad"]] * len(ss), [
            [1.0, 0.0]
        ] * len(ss)

    torch.manual_seed(0)
    out = aug(_input([0.0, 0.45, 1.2], [[0, 0], [0, 0.9], [1.2, 1.2]], regenerate=regenerate))
    assert sorted(out) == [0, 2]  # prompt 1: |Δ| = 0.05 < dead band and not degenerate
    done = out[0].sample.extra(vidrl.Augmentation)
    record = {"kind": "hint", "delta": 0.5, "level": 1, "hint": "One."}
    assert done == vidrl.Augmentation("difficulty_aug", record)
    assert out[0].sample.question.endswith("\nHint: One.")
    assert out[2].sample.extra(vidrl.Augmentation).record["kind"] == "noise"
    assert out[2].sample.extra(vidrl.Augmentation).record["amount"] == pytest.approx(0.05 * 1.7)
    m = aug.metrics()
    assert (
        m["difficulty_aug/hints"] == 1
        and m["difficulty_aug/noise"] == 1
        and m["difficulty_aug/hint_failed"] == 0
    )


def test_state_round_trip():
    aug = _aug(window=3)
    aug.observe([NUM] * 4, [0.1, 0.2, 0.3, 0.4])
    other = _aug(window=3)
    other.load_state_dict(aug.state_dict())
    assert list(other.buffer.values) == [0.2, 0.3, 0.4]


@pytest.mark.parametrize(
    "bad", [dict(window=0), dict(sigma=0.6), dict(max_mask_fraction=1.0), dict(hint_template="x")]
)
def test_bad_options(bad):
    with pytest.raises(ValueError):
        _aug(**bad)
