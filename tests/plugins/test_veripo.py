"""VerIPO's verifier checks on crafted responses, pair building on a crafted group, pruning
arithmetic, and the pair rows the dpo stage reads."""

import json

import pytest

import vidrl
from vidrl.plugins.dpo import pair_texts
from vidrl.plugins.veripo.loop import group_accuracy, prune
from vidrl.plugins.veripo.pairs import Pair, PairConfig, build_pairs, pair_row, reflection_text
from vidrl.plugins.veripo.verifier import (
    Rollout,
    Verdict,
    VerifierConfig,
    accurate,
    is_repetitive,
    length_ok,
    repetition,
    split_response,
    verdict_metrics,
    verify,
)

COUNT = vidrl.Sample("c", "How many squares?", "2", task_type="numeric")
MC = vidrl.Sample("m", "Which colour?", "B", task_type="multiple_choice", options=("red", "green", "blue"))
TG = vidrl.Sample("t", "When?", "2-4", task_type="temporal_grounding", span=(2.0, 4.0), duration=8.0)


def answer(reasoning, said):
    return f"<think>{reasoning}</think><answer>{said}</answer>"


class ReasoningNamesAnswer:
    """A judge stand-in: consistent when the reasoning contains the answer. Counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, items):
        self.calls.append(len(items))
        return [vidrl.Judgement(i.answer in i.reasoning, "x", True) for i in items]


# -- the checks ----------------------------------------------------------------------------


def test_split_response():
    assert split_response(answer("I count 2.", "2")) == ("I count 2.", "2")
    assert split_response("I count 2. <answer>2</answer>") == ("I count 2.", "2")
    assert split_response("<answer>2</answer><answer>3</answer>") == ("", "")
    assert split_response("no tags at all") == ("no tags at all", "")


@pytest.mark.parametrize(
    ("text", "sample", "expected"),
    [
        (answer("", "2"), COUNT, True),
        (answer("", "2.0"), COUNT, True),
        (answer("", "3"), COUNT, False),
        ("2", COUNT, False),  # no answer block
        (answer("", "B"), MC, True),
        (answer("", "A or B"), MC, False),
        (answer("", "2-4"), TG, True),
        (answer("", "2-3"), TG, True),  # IoU 0.5: at the threshold
        (answer("", "2-2.9"), TG, False),  # IoU 0.45
        (answer("", "4-2"), TG, False),  # reversed span: unparsed
    ],
)
def test_accuracy(text, sample, expected):
    assert accurate(text, sample, iou_threshold=0.5) is expected


def test_repetition_counts_repeated_ngrams_and_sentences():
    share, most = repetition("a b c a b c", ngram=2, min_sentence_words=3)
    assert share == pytest.approx(1 - 3 / 5) and most == 1  # ab bc ca ab bc: 3 distinct of 5
    share, most = repetition("I see two. I see two! I see two.\nthree", ngram=3, min_sentence_words=3)
    assert most == 3
    assert repetition("short", ngram=4, min_sentence_words=3) == (0.0, 0)
    # tags are not words: the same sentence inside and outside a tag block still repeats
    assert repetition("<think>it is red.</think> it is red.", ngram=9, min_sentence_words=3)[1] == 2


def test_repetition_thresholds_are_inclusive_limits():
    text = "a b c a b c"  # 2-grams: ab bc ca ab bc, a share of 0.4 repeated
    assert not is_repetitive(text, VerifierConfig(ngram=2, max_ngram_repeat=0.4))
    assert is_repetitive(text, VerifierConfig(ngram=2, max_ngram_repeat=0.39))
    twice = "I see two. I see two."
    assert is_repetitive(twice, VerifierConfig(max_ngram_repeat=1.0))
    assert not is_repetitive(twice, VerifierConfig(max_ngram_repeat=1.0, max_sentence_repeats=2))


def test_length():
    c = VerifierConfig(min_tokens=3, max_tokens=5)
    assert [length_ok(n, False, c) for n in (2, 3, 5, 6)] == [False, True, True, False]
    assert not length_ok(4, True, c)
    assert length_ok(4, True, VerifierConfig(truncated_fails=False))


def test_verify_judges_every_response_in_one_batch():
    rollouts = [
        Rollout("c", "g", answer("I count 2.", "2"), 8, False),
        Rollout("c", "g", answer("I count 3.", "2"), 8, False),
        Rollout("c", "g", answer("I count 3.", "3"), 8, True),
    ]
    judge = ReasoningNamesAnswer()
    v = verify(rollouts, {"c": COUNT}, judge, VerifierConfig())
    assert judge.calls == [3]
    assert [x.failed() for x in v] == [[], ["consistency"], ["accuracy", "length"]]
    assert [x.passes for x in v] == [True, False, False]
    skipped = verify(rollouts, {"c": COUNT}, None, VerifierConfig())
    assert [x.consistent for x in skipped] == [None] * 3 and [x.passes for x in skipped] == [
        True,
        True,
        False,
    ]


def test_verdict_metrics():
    v = [
        Verdict(True, True, False, True, 10, "Consistent", True),
        Verdict(False, False, True, True, 20, "??", False),
    ]
    m = verdict_metrics(v, judged=True)
    assert (
        m["veripo/pass/accuracy"] == 0.5
        and m["veripo/pass/all"] == 0.5
        and m["veripo/pass/repetition"] == 0.5
    )
    assert m["veripo/inconsistent_rate"] == 0.5 and m["veripo/judge_unparseable"] == 0.5
    assert m["veripo/response_length"] == 15 and m["veripo/judge_skipped"] == 0
    unjudged = verdict_metrics([Verdict(True, None, False, True, 4)], judged=False)
    assert unjudged["veripo/judge_skipped"] == 1 and "veripo/inconsistent_rate" not in unjudged


# -- pairs ---------------------------------------------------------------------------------

GROUP = [
    Rollout("c", "g0", answer("I count 2 squares, one red and one blue.", "2"), 14, False),  # 0 passes, long
    Rollout("c", "g0", answer("I count 2.", "2"), 8, False),  # 1 passes, short
    Rollout("c", "g0", answer("I count 3.", "3"), 8, False),  # 2 wrong (consistent)
    Rollout("c", "g0", answer("I count 3.", "2"), 8, False),  # 3 right answer, inconsistent reasoning
    Rollout("c", "g0", answer("I count 2. I count 2. I count 2.", "2"), 16, False),  # 4 repetitive
    Rollout("c", "g0", answer("I count 2", "2"), 24, True),  # 5 cut off
    Rollout("c", "g0", answer("It is 4.", "4"), 7, False),  # 6 wrong
]


def crafted_pairs(judge, config=None):
    c = VerifierConfig(max_sentence_repeats=1, min_sentence_words=2)
    verdicts = verify(GROUP, {"c": COUNT}, judge, c)
    return verdicts, build_pairs(GROUP, verdicts, {"c": COUNT}, judge, c, config or PairConfig())


def test_pairs_of_a_crafted_group():
    verdicts, pairs = crafted_pairs(ReasoningNamesAnswer())
    assert [v.passes for v in verdicts] == [True, True, False, False, False, False, False]
    got = [(p.kind, p.chosen_from, p.rejected_from) for p in pairs]
    # penalty: 2, 4 (then the limit of 2); chosen: the longest acceptable first, then the next
    # consistency: 3; reflection: wrong 2 with right 0, wrong 6 with right 1
    assert got == [
        ("penalty", (0,), 2),
        ("consistency", (0,), 3),
        ("penalty", (1,), 4),
        ("reflection", (2, 0), 2),
        ("reflection", (6, 1), 6),
    ]
    reflection = pairs[3]
    assert reflection.chosen.endswith("<answer>2</answer>") and reflection.chosen.count("<answer>") == 1
    assert "I count 3." in reflection.chosen and reflection.rejected == GROUP[2].text
    assert reflection.chosen_verdict.passes and not reflection.rejected_verdict.accurate


def test_pair_limits_judge_and_empty_groups():
    _, pairs = crafted_pairs(ReasoningNamesAnswer(), PairConfig(max_per_group=1, reflection=False))
    assert [(p.kind, p.rejected_from) for p in pairs] == [("penalty", 2), ("consistency", 3)]
    _, unjudged = crafted_pairs(None)  # no judge: no consistency verdicts, no reflections
    assert {p.kind for p in unjudged} == {"penalty"}

    class NeverConsistent:
        def __call__(self, items):
            return [vidrl.Judgement(False, "Inconsistent", True) for _ in items]

    _, none = crafted_pairs(NeverConsistent())  # nothing acceptable: nothing to choose
    assert none == []


def test_reflection_text_keeps_only_the_right_answer():
    text = reflection_text(
        answer("I count 3.", "3"), answer("I count 2.", "2"), PairConfig().reflection_template
    )
    assert split_response(text)[1] == "2" and text.count("<answer>") == 1
    assert text.startswith("<think>I count 3. That gives 3. Wait")


def test_pair_rows_are_a_dpo_data_set(synth_data, tmp_path):
    ds = vidrl.load_dataset(synth_data)
    sample = ds.samples[0]
    verdicts = verify(
        [Rollout(sample.id, "g", "x", 1, False)] * 2, {sample.id: sample}, None, VerifierConfig()
    )
    pair = Pair("penalty", "g", "good", "bad", verdicts[0], verdicts[1], (0,), 1)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(pair_row(pair, sample, 0)) + "\n")
    back = vidrl.load_dataset(path, root=ds.root).samples[0]
    assert back.id == f"{sample.id}#pair0" and back.video == sample.video and back.question == sample.question
    assert pair_texts([back]) == (["good"], ["bad"])
    assert back.metadata["pair_type"] == "penalty" and back.metadata["rejected_verdict"]["failed"] == [
        "accuracy"
    ]


# -- pruning -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("easy", "share", "dropped"),
    [(10, 0.8, 8), (0, 0.8, 0), (1, 0.8, 1), (3, 0.5, 2), (4, 0.5, 2), (5, 0.0, 0), (12, 1.0, 11)],
)
def test_prune_arithmetic(easy, share, dropped):
    pool = [f"p{i}" for i in range(12)]
    accuracy = {p: 1.0 if i < easy else 0.5 for i, p in enumerate(pool)}
    kept, gone = prune(pool, accuracy, share, seed=0)
    assert len(gone) == dropped and set(gone) <= {p for p in pool if accuracy[p] == 1.0}
    assert kept == [p for p in pool if p not in gone]  # order kept; never the whole pool
    assert prune(pool, accuracy, share, seed=0) == (kept, gone)


def test_group_accuracy_is_the_mean_over_every_rollout_of_a_prompt():
    rollouts = [Rollout(p, "g", "", 1, False) for p in ("a", "a", "b", "a")]
    assert group_accuracy(rollouts, [True, True, False, True]) == {"a": 1.0, "b": 0.0}


def test_repeated_sample_ids_are_refused():
    from vidrl.plugins.veripo.loop import check_unique_ids

    samples = [vidrl.Sample("a", "q", "1"), vidrl.Sample("b", "q", "1"), vidrl.Sample("a", "q", "2")]
    with pytest.raises(vidrl.ConfigError, match=r"must be unique.*\['a'\]"):
        check_unique_ids(vidrl.Dataset(samples, ["1", "2", "3"], "."))
    check_unique_ids(vidrl.Dataset(samples[:2], ["1", "2"], "."))
