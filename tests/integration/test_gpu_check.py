"""The prepared GPU check stays runnable between GPU sessions: its script parses, and its RL-step
benchmark runs end to end on the CPU at the tiny size (the real sizes need a GPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_check_script_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu" / "check.sh")]).returncode == 0


def test_rl_step_benchmark_runs_on_the_cpu(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu" / "rl_step.py"), "--size", "tiny", "--steps", "1",
           "--frames", "4", "--side", "56", "--max-new-tokens", "4", "--precision", "bf16-mixed",
           "--gradient-checkpointing", "--out", str(tmp_path)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = [json.loads(line) for line in (tmp_path / "rl-step.jsonl").read_text().splitlines()]
    assert (
        result["size"] == "tiny" and result["precision"] == "bf16-mixed" and result["gradient_checkpointing"]
    )
    assert set(result["median"]["seconds"]) == {"rollout", "score", "logprob", "update"}
    assert (
        result["step_seconds"] > 0 and result["tokens_per_second"] > 0 and result["mfu"] is None
    )  # no GPU peak
    assert "| update |" in (tmp_path / "rl-step.md").read_text()
