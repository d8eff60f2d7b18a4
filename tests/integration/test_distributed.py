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
