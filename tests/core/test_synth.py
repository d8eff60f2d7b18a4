"""Synthetic video tasks: deterministic for a seed, answers consistent with the scene."""

import json

import numpy as np
import pytest

from vidrl.cli import main
from vidrl.data.datasets import load_dataset
from vidrl.data.synth import LETTERS, TASKS, make_scene, synthesize


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_rows_and_pixels(tmp_path):
    a = synthesize(tmp_path / "a", num=2, seed=5)
    b = synthesize(tmp_path / "b", num=2, seed=5)
    c = synthesize(tmp_path / "c", num=2, seed=6)
    assert _rows(a) == _rows(b) and _rows(a) != _rows(c)
    from vidrl import Session
    from vidrl.data.video import read_video

    dec = Session().load().create("video_backend", "pyav")
    fa, fb = (read_video(dec, str(p.parent / "videos/00001.mp4")) for p in (a, b))
    assert np.array_equal(fa.pixels.numpy(), fb.pixels.numpy())


def test_a_video_does_not_depend_on_how_many_are_made(tmp_path):
    few = _rows(synthesize(tmp_path / "few", num=1, seed=2))
    many = _rows(synthesize(tmp_path / "many", num=3, seed=2))
    assert few == many[: len(few)]


def test_answers_match_the_scene(synth_data):
    rows = _rows(synth_data)
    assert {r["task_type"] for r in rows} == set(TASKS)
    for r in rows:
        objs = [o for o in r["metadata"]["objects"] if o["colour"] != "grey"]
        first, second = objs[0], objs[1]
        assert first["start"] < second["start"]  # squares are listed by start time
        if r["task_type"] == "multiple_choice":
            assert r["options"][LETTERS.index(r["answer"])] == first["colour"]
            assert len(set(r["options"])) == 4
        elif r["task_type"] == "numeric":
            assert int(r["answer"]) == len(objs)
        elif r["task_type"] == "temporal_grounding":
            colour = r["question"].split("the ")[1].split(" square")[0]
            (obj,) = [o for o in objs if o["colour"] == colour]
            assert r["span"] == pytest.approx([obj["start"], obj["end"]], abs=1e-3)
        else:
            assert r["answer"] == second["colour"]
            assert r["span"] == pytest.approx([second["start"], second["end"]], abs=1e-3)
    assert len(load_dataset(synth_data)) == len(rows)  # every row is a valid Sample


def test_difficulty_adds_objects_distractors_and_shortens_events():
    rng = np.random.default_rng
    easy = [make_scene(rng(i), 0) for i in range(20)]
    hard = [make_scene(rng(i), 3) for i in range(20)]
    assert all(len(s.squares) == 2 and not s.distractors for s in easy)
    assert all(len(s.squares) == 5 and len(s.distractors) == 3 for s in hard)
    mean_len = [np.mean([q.end - q.start for s in ss for q in s.squares]) for ss in (easy, hard)]
    assert mean_len[1] < mean_len[0]
    for s in hard:
        assert len({q.colour for q in s.squares}) == 5 and len({q.start for q in s.squares}) == 5
        assert all(0 <= q.start < q.end <= s.duration for q in s.squares)


def test_bad_arguments():
    with pytest.raises(ValueError, match="need num >= 1"):
        synthesize("unused", num=0)


def test_cli_synth_then_check(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--num", "2", "--seed", "1"]) == 0
    assert "wrote 2 videos and 8 rows" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "data.jsonl")]) == 0
    assert "all 8 rows are good (decoded with decord, then " in capsys.readouterr().out  # then the others
    (tmp_path / "videos" / "00001.mp4").write_bytes(b"garbage" * 10)
    assert main(["data", "check", str(tmp_path / "data.jsonl"), "--backend", "pyav"]) == 1
    out = capsys.readouterr().out
    assert "4 of 8 rows are bad (decoded with pyav)" in out and "data.jsonl:5:" in out


def test_difficulty_levels_are_cycled_over_videos(tmp_path):
    path = synthesize(tmp_path, 3, seed=1, difficulty=[0, 2], tasks=["numeric"])
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["2", "4", "2"]
    with pytest.raises(ValueError, match="difficulties >= 0"):
        synthesize(tmp_path, 1, difficulty=[])
