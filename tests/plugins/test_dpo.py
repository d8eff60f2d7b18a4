"""DPO: the loss and its gradient against an fp64 reference, its known values, missing pair
columns, and a tiny stage run whose preference margin grows."""

import json
import math
import shutil

import pytest
import torch

from vidrl import Sample, load_config
from vidrl.engine.pipeline import train
from vidrl.plugins.dpo import dpo_loss, pair_texts


def test_loss_and_gradient_match_the_fp64_reference():
    g = torch.Generator().manual_seed(0)
    c, r, rc, rr = (torch.randn(9, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    c.requires_grad_()
    r.requires_grad_()
    loss, margin = dpo_loss(c, r, rc, rr, beta=0.1)
    expected = -torch.log(torch.sigmoid(0.1 * ((c - rc) - (r - rr))))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(margin, 0.1 * ((c - rc) - (r - rr)))
    gc, gr = torch.autograd.grad(loss.sum(), (c, r))
    ec, er = torch.autograd.grad(expected.sum(), (c, r))
    torch.testing.assert_close(gc, ec)
    torch.testing.assert_close(gr, er)
    assert torch.allclose(gc, -gr)  # the loss depends on chosen − rejected only


def test_known_values_and_extremes():
    z = torch.zeros(1)
    assert dpo_loss(z, z, z, z, 0.1)[0].item() == pytest.approx(math.log(2))  # policy = reference
    big = torch.tensor([1e4])
    assert dpo_loss(big, -big, z, z, 0.1)[0].item() == pytest.approx(0.0, abs=1e-12)
    assert dpo_loss(-big, big, z, z, 0.1)[0].item() == pytest.approx(2e3)  # linear, not inf


def test_rows_need_both_responses():
    good = Sample("a", "q", "1", metadata={"chosen": "x", "rejected": "y"})
    assert pair_texts([good]) == (["x"], ["y"])
    with pytest.raises(ValueError, match=r"missing in \['b'\]"):
        pair_texts([good, Sample("b", "q", "1", metadata={"chosen": "x"})])


@pytest.mark.slow
def test_a_dpo_stage_raises_the_preference_margin(tiny_model_dir, synth_data, tmp_path):
    shutil.copytree(synth_data.parent / "videos", tmp_path / "videos")
    rows = [json.loads(x) for x in synth_data.read_text().splitlines()]
    for r in rows:
        r.update(chosen=f"<answer>{r['answer']}</answer>", rejected="<answer>no idea</answer>")
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "model": {"path": str(tiny_model_dir("qwen2_5_vl"))},
        "data": {"train": str(tmp_path / "pairs.jsonl"), "max_frames": 2},
        "stages": [
            {
                "name": "dpo",
                "options": {
                    "steps": 8,
                    "batch_size": 4,
                    "micro_batch_size": 2,
                    "nll_weight": 0.5,
                    "optim": {"lr": 1e-3},
                },
            }
        ],  # fmt: skip
        "log": {"progress": False},
        "eval": {"before": False, "after": False},
    }
    config, session = load_config(raw)
    train(config, session, tmp_path / "run")
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["dpo/margin"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as its reference
    assert metrics[-1]["dpo/margin"] > 0.5 and metrics[-1]["dpo/accuracy"] == 1.0
    assert metrics[-1]["loss"] < metrics[0]["loss"] and all(math.isfinite(m["dpo/nll"]) for m in metrics)
