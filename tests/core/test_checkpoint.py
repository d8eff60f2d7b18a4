"""Checkpoints: atomic commit, the ``latest`` pointer, pruning, generator states, and logs that
drop what was written after the checkpoint a run resumes from."""

import random

import numpy as np
import pytest
import torch

from vidrl.engine import checkpoint as ckpt
from vidrl.engine.report import JsonlLog


class Model:
    def __init__(self, value):
        self.value = value

    def save_pretrained(self, path):
        path.mkdir(parents=True)
        (path / "weights.txt").write_text(str(self.value))


def _save(root, name, value, keep=None):
    tmp = ckpt.staging(root, name)
    tmp.mkdir(parents=True)
    ckpt.write_main(tmp, Model(value), None, {"value": value})
    ckpt.write_rng(tmp, 0)
    return ckpt.commit(root, name, keep)


def test_commit_points_latest_at_the_newest_and_prunes_old_steps(tmp_path):
    assert ckpt.latest(tmp_path) is None
    for step in (1, 2, 3):
        _save(tmp_path, f"step-{step:07d}", step, keep=2)
    _save(tmp_path, "stage-0-sft", 9, keep=None)
    assert ckpt.latest(tmp_path).name == "stage-0-sft"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest",
        "stage-0-sft",
        "step-0000002",
        "step-0000003",
    ]
    assert ckpt.load_state(tmp_path / "step-0000003") == {"value": 3}


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path):
    _save(tmp_path, "step-0000001", 1)
    half = ckpt.staging(tmp_path, "step-0000002")
    half.mkdir()
    (half / "state.pt").write_bytes(b"partial")
    assert ckpt.latest(tmp_path).name == "step-0000001"
    _save(tmp_path, "step-0000001", 5)  # re-saving a step replaces it
    assert ckpt.load_state(tmp_path / "step-0000001") == {"value": 5}


def test_a_dangling_pointer_and_an_unreadable_state_are_errors(tmp_path):
    (tmp_path / "latest").write_text("step-0000007\n")
    with pytest.raises(ckpt.CheckpointError, match="not a complete checkpoint"):
        ckpt.latest(tmp_path)
    (tmp_path / "step-0000007").mkdir()
    (tmp_path / "step-0000007" / "state.pt").write_bytes(b"junk")
    with pytest.raises(ckpt.CheckpointError, match="cannot read checkpoint"):
        ckpt.load_state(tmp_path / "step-0000007")
    with pytest.raises(ckpt.CheckpointError, match="no generator state for rank 1"):
        ckpt.read_rng(tmp_path / "step-0000007", 1)


def test_generator_states_round_trip(tmp_path):
    ckpt.write_rng(tmp_path, 0)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    ckpt.set_rng_state(ckpt.read_rng(tmp_path, 0))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_logs_drop_lines_after_the_resumed_step(tmp_path):
    log = JsonlLog(tmp_path / "m.jsonl")
    for step in range(1, 6):
        log.write({"step": step, "x": torch.tensor([step])})
    with log.path.open("a") as f:
        f.write('{"step": 6, "x"')  # a line cut by a crash
    log.truncate(3)
    assert [r["step"] for r in log.read()] == [1, 2, 3]
    assert next(log.read())["x"] == [1]


def test_plot_draws_the_panels_that_have_data(tmp_path):
    from vidrl.engine.report import plot

    log = JsonlLog(tmp_path / "metrics.jsonl")
    assert plot(log, tmp_path / "none.png") is None
    for step in range(1, 4):
        log.write({"step": step, "reward/mean": step / 3, "reward/format": float("nan")})
    log.write({"step": 3, "eval": "after", "eval/n": 4.0, "eval/accuracy": 0.5})
    out = plot(log, tmp_path / "curves.png")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
