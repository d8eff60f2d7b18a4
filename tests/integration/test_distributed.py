"""Data parallel: two CPU processes (gloo) each with half the prompts make the same update as one
process with all of them — the loss normalisers are whole-step counts over both ranks and the
gradient average over ranks is undone."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from vidrl.models.estimate import counts, per_gpu

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("ddp_step.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RNG = ["rng-0.pt", "rng-1.pt"]
# what `accelerate launch` sets for examples/accelerate/fsdp2.yaml (in part)
FSDP2 = {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
}


def _run(prefix, model_dir, data, out, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([*prefix, str(SCRIPT), str(model_dir), str(data), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(out)


@pytest.mark.parametrize("sharding", ["ddp", "fsdp2", "fsdp2-token-budget"])
def test_two_processes_update_like_one(tiny_model_dir, synth_data, tmp_path, sharding):
    model_dir = tiny_model_dir("qwen2_5_vl")
    one = _run([sys.executable], model_dir, synth_data, tmp_path / "one.safetensors")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    # 190 tokens: one rank plans 5 micro-batches alone, the other 3 (checked below)
    env = {"ddp": None, "fsdp2": FSDP2, "fsdp2-token-budget": {**FSDP2, "STEP_TOKEN_BUDGET": "190"}}[sharding]
    two = _run(launcher, model_dir, synth_data, tmp_path / "two.safetensors", env)
    base = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    moved = [k for k in one if not torch.equal(one[k], base[k])]
    assert len(moved) > len(one) // 2  # the step really changed the model
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    if sharding == "fsdp2-token-budget":  # [alone, agreed] per rank: different plans, as many forwards
        plans = [json.loads((tmp_path / f"two.safetensors.plan{r}.json").read_text())[0] for r in (0, 1)]
        assert plans[0][0] != plans[1][0] and plans[0][1] == plans[1][1], plans
    if sharding == "fsdp2":  # each rank held half of the weights and gradients, as `vidrl estimate` says
        c = counts(AutoModelForImageTextToText.from_pretrained(model_dir))  # all of it trains there
        est = per_gpu(c, precision="fp32", reference=False, lora=False, checkpointing=False, shards=2,
                      micro_tokens=1, rollout_tokens=1)  # fmt: skip
        for rank in (0, 1):
            held = json.loads((tmp_path / f"two.safetensors.rank{rank}.json").read_text())
            for part in ("weights", "gradients"):  # FSDP2 splits each parameter's rows: within 1 %
                assert abs(held[part] - est[part]) <= 0.01 * est[part], (rank, part, held[part], est[part])


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
    # the evaluation was shared between the ranks and gathered: every held-out row once, in order
    held_out = [json.loads(x)["id"] for x in (tmp_path / "run" / "data" / "eval" / "data.jsonl").open()]
    answers = [json.loads(x)["sample"] for x in (tmp_path / "run" / "eval-after-answers.jsonl").open()]
    result = json.loads((tmp_path / "run" / "eval-after.json").read_text())
    assert answers == held_out and result["n"] == len(held_out) >= 2  # one row per rank at least


def test_fsdp2_run_checkpoints_shards_and_resumes_exactly(tiny_model_dir, tmp_path):
    """Two FSDP2 processes through `vidrl train` (gradient checkpointing on): sharded policy and
    reference (β > 0), evaluation
    on the main process, checkpoints with the full model and the optimizer as shards; resuming
    from the middle of the stage ends with exactly the same model as the run that went straight."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model: {{path: {tiny_model_dir('qwen2_5_vl')}, gradient_checkpointing: true}}\n"
        "data: {synth: {train_videos: 4, eval_videos: 1}, max_frames: 2}\n"
        "stages: [{name: sft, options: {steps: 2, batch_size: 2}},\n"
        "         {name: rl, options: {steps: 2, prompts_per_step: 1, group_size: 2, max_new_tokens: 4}}]\n"
        "advantage: grpo\nloss: {name: ppo_clip, options: {beta: 0.1}}\n"
        "rewards: [{name: format, options: {think: false}}]\n"
        "checkpoint: {every: 1}\nlog: {progress: false}\neval: {max_new_tokens: 4}\n"
    )
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    out = _train_two(["train", str(cfg), "--output-dir", str(straight)])
    assert "2 process(es) (multi_cpu, sharded: fsdp2)" in out
    step = straight / "checkpoints" / "step-0000001"
    assert sorted(p.name for p in step.iterdir()) == ["model", "optimizer", *RNG, "state.pt"]
    # as after a crash in step 2 of the SFT stage: the newest checkpoint is step 1
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "model")
    for later in ("step-0000003", "stage-0-sft", "stage-1-rl"):
        shutil.rmtree(resumed / "checkpoints" / later, ignore_errors=True)
    (resumed / "checkpoints" / "latest").write_text("step-0000001\n")
    _train_two(["train", "--resume", str(resumed)])
    a, b = (load_file(d / "model" / "model.safetensors") for d in (straight, resumed))
    base = load_file(tiny_model_dir("qwen2_5_vl") / "model.safetensors")
    assert a.keys() == b.keys() and any(not torch.equal(a[k], base[k]) for k in a)  # trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def _train_two(args):
    """`vidrl ARGS` in two CPU processes, launched with the FSDP2 accelerate config the docs give
    (accelerate does not shard on CPU processes; vidrl then prepares FSDP2 itself); its stdout."""
    accelerate = Path(sys.executable).parent / "accelerate"
    config = ROOT / "examples" / "accelerate" / "fsdp2.yaml"
    launcher = [str(accelerate), "launch", "--config_file", str(config), "--num_processes", "2",
                "--main_process_port", str(_free_port()), "-m", "vidrl.cli"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_fsdp2_bf16_mixed_keeps_logprobs_float32_and_the_reference_equal(tiny_model_dir):
    """FSDP2's bf16 policy casts what units return to bf16 unless told otherwise: the LM head is
    kept in float32, so log-probs stay float32, and the reference has the policy's numerics."""
    script = Path(__file__).with_name("fsdp_numerics.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PORT": str(_free_port())}
    done = subprocess.run([sys.executable, str(script), str(tiny_model_dir("qwen2_5_vl"))], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "torch.float32" and out["head"] == ["torch.float32"] and out["reference_equal"]
    assert 0 < out["max_diff"] < 0.1  # bf16 layers, float32 head: close to float32, not equal
