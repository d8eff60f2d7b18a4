"""Run by test_distributed.py: one RL step of the tiny model on 4 prompts with fixed responses —
in one process over all of them, or in each of two gloo processes over half of them (launched by
torch.distributed.run; data parallel, or FSDP2 when the environment asks for it as `accelerate
launch` with an FSDP2 config does). Rank 0 saves the updated parameters to OUT.

usage: ddp_step.py MODEL_DIR DATA_JSONL OUT
"""

import json
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText, AutoProcessor

import vidrl
from vidrl.cli import end_distributed
from vidrl.data.datasets import load_dataset
from vidrl.data.video import read_video
from vidrl.engine.context import AccelerateCollective
from vidrl.models.inputs import prepare_batch
from vidrl.models.sharding import sharding_for

PROMPTS, G, T = 4, 3, 7


class FixedResponses(vidrl.RolloutBackend):
    """Copy k of a prompt gets the same random response wherever it runs: seeded by the prompt's
    token ids and k; lengths vary, so ranks hold different token counts."""

    def __init__(self, eos_id, pad_id, vocab):
        self.eos_id, self.pad_id, self.vocab = eos_id, pad_id, vocab

    def generate(self, request):
        rows = []
        for ids in request.prompt_ids():  # without the left padding, which depends on the batch
            ids = torch.tensor(ids)
            for k in range(request.group_size):
                g = torch.Generator().manual_seed(int((ids * torch.arange(len(ids))).sum()) * 10 + k)
                n = int(torch.randint(1, T, (1,), generator=g))
                row = torch.full((T,), self.pad_id)
                row[:n] = torch.randint(0, 100, (n,), generator=g)
                row[n] = self.eos_id if n < T else row[n - 1]
                rows.append(row)
        return torch.stack(rows)


class Length(vidrl.Reward):
    name = "length"

    def __call__(self, responses, samples):
        return [len(r) / 10 for r in responses]


def main(model_dir, data, out):
    acc = Accelerator(cpu=True)
    rank, world = acc.process_index, acc.num_processes
    processor = AutoProcessor.from_pretrained(model_dir)
    ds = load_dataset(data)
    backend = vidrl.Session().load().create("video_backend", "pyav")
    per = PROMPTS // world
    mine = ds.samples[rank * per : (rank + 1) * per]
    clips = [read_video(backend, str(ds.path(s.video)), fps=1.0, min_frames=2, max_frames=2) for s in mine]
    batch, _ = prepare_batch(processor, mine, clips)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    sharding = sharding_for(acc)  # FSDP2 when the environment asks for it (ACCELERATE_USE_FSDP, FSDP_VERSION)
    wrapped = sharding.prepare(model)
    if sharding.name == "fsdp2":  # really sharded: each rank holds part of every parameter
        assert all(type(p).__name__ == "DTensor" for p in wrapped.parameters())
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=1.0)  # FSDP2: this rank's shards
    collective = AccelerateCollective(acc) if world > 1 else vidrl.Collective()
    learner = vidrl.Learner(
        wrapped, opt, None, FixedResponses(eos, tok.pad_token_id, len(tok)), eos, None, collective
    )
    session = vidrl.Session().load()
    algo = vidrl.Algorithm(session.create("advantage", "grpo"), session.create("loss", "ppo_clip"),
                           [("length", 1.0, Length())])  # fmt: skip
    budget = int(os.environ.get("STEP_TOKEN_BUDGET", "0"))  # ranks then plan different micro-batches
    opts = vidrl.StepOptions(
        group_size=G, micro_batch_size=2, max_grad_norm=0.0, max_tokens_per_micro_batch=budget
    )
    if budget:  # record the micro-batches each rank plans alone, and after agreeing with the others
        import vidrl.engine.step as step

        planned = []

        def recorded(gen, *args, _plan=step.plan):
            parts = _plan(gen, *args)
            planned.append([len(step.micro_batches(gen, 2, budget)), len(parts)])
            return parts

        step.plan = recorded
    vidrl.rl_step(learner, algo, tok, batch, mine, opts)
    if budget:
        Path(f"{out}.plan{rank}.json").write_text(json.dumps(planned))
    if sharding.name == "fsdp2":  # what this rank holds, for the memory estimate's FSDP2 rows
        local = lambda ts: sum(t.to_local().numel() * t.element_size() for t in ts)  # noqa: E731
        held = {"weights": local(wrapped.parameters()), "gradients": local(p.grad for p in trainable)}
        Path(f"{out}.rank{rank}.json").write_text(json.dumps(held))
    weights = sharding.model_state(wrapped) or model.state_dict()  # every rank: gathered under FSDP2
    if acc.is_main_process:
        save_file({k: v.contiguous() for k, v in weights.items()}, out)
    acc.wait_for_everyone()
    end_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:])
