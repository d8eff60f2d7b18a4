"""Data parallel: two CPU processes (gloo) each with half the prompts make the same update as one
process with all of them — the loss normalisers are whole-step counts over both ranks and the
gradient average over ranks is undone."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("ddp_step.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(prefix, model_dir, data, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*prefix, str(SCRIPT), str(model_dir), str(data), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(out)


def test_two_processes_update_like_one(tiny_model_dir, synth_data, tmp_path):
    model_dir = tiny_model_dir("qwen2_5_vl")
    one = _run([sys.executable], model_dir, synth_data, tmp_path / "one.safetensors")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    two = _run(launcher, model_dir, synth_data, tmp_path / "two.safetensors")
    base = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    moved = [k for k in one if not torch.equal(one[k], base[k])]
    assert len(moved) > len(one) // 2  # the step really changed the model
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6, msg=k)


def test_a_whole_run_in_two_processes(tiny_model_dir, tmp_path):
    """Set-up, evaluation, checkpoints and stage changes do not deadlock, and every rank's
    generator state is saved."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {{path: {tiny_model_dir('qwen2_5_vl')}}}\n"
        "data: {synth: {train_videos: 4, eval_videos: 1}, max_frames: 2}\n"
        "stages: [{name: sft, options: {steps: 2, batch_size: 1}},\n"
        "         {name: rl, options: {steps: 2, prompts_per_step: 1, group_size: 2, max_new_tokens: 4}}]\n"
        "advantage: grpo\nloss: ppo_clip\nrewards: [{name: format, options: {think: false}}]\n"
        "checkpoint: {every: 1}\nlog: {progress: false}\neval: {max_new_tokens: 4}\n"
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    vidrl = Path(sys.executable).parent / "vidrl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, str(vidrl), "train", str(cfg), "--output-dir", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # only the main process reports
    step = tmp_path / "run" / "checkpoints" / "step-0000003"
    assert sorted(p.name for p in step.iterdir()) == ["model", "rng-0.pt", "rng-1.pt", "state.pt"]
    rows = [r for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' not in r]
    assert len(rows) == 4
