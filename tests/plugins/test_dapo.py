"""DAPO's overlong reward: the paper's piecewise penalty, its options' errors, and the token
counts the scorer hands to a reward that declares it needs them."""

import pytest

import vidrl
from vidrl import Session
from vidrl.engine.scoring import RewardError, score


@pytest.fixture(scope="module")
def overlong():
    cls = Session().load().registry("reward").get("overlong")
    return lambda **kw: cls(cls.Config(**kw))


def _expected(n, l_max, cache):
    """R_length from the paper (arXiv 2503.14476, eq. 13), written out case by case."""
    if n <= l_max - cache:
        return 0.0
    if l_max - cache < n <= l_max:
        return ((l_max - cache) - n) / cache
    return -1.0


@pytest.mark.parametrize(("l_max", "cache"), [(20, 5), (7, 7), (13, 1)])
def test_the_penalty_is_zero_then_linear_to_minus_one_at_the_budget(overlong, l_max, cache):
    lengths = list(range(0, l_max + 4))
    got = overlong(max_length=l_max, buffer=cache, factor=0.5)([""] * len(lengths), [None] * len(lengths),
                                                               lengths=lengths)  # fmt: skip
    assert got == [pytest.approx(0.5 * _expected(n, l_max, cache)) for n in lengths]
    assert got[l_max] == pytest.approx(-0.5) and got[l_max - cache] == 0.0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_length": 8, "buffer": 0}, "0 < buffer <= max_length"),
        ({"max_length": 4, "buffer": 5}, "got buffer 5"),
        ({"max_length": 8, "buffer": 2, "factor": -1.0}, "factor must be >= 0"),
    ],
)
def test_bad_options_say_what(overlong, kw, match):
    with pytest.raises(ValueError, match=match):
        overlong(**kw)


def test_the_scorer_passes_token_counts_to_the_rewards_that_need_them(overlong):
    s = vidrl.Sample("x", "q", "1")
    out = score([("len", 2.0, overlong(max_length=10, buffer=4))], ["a", "b", "c"], [s] * 3, [3, 8, 10])
    assert out.total.tolist() == pytest.approx([0.0, -1.0, -2.0])
    with pytest.raises(RewardError, match="reward 'len' .* needs response lengths"):
        score([("len", 1.0, overlong(max_length=10, buffer=4))], ["a"], [s])
