"""Run by test_distributed.py: log-probs of the tiny model under FSDP2 with bf16-mixed, in one
gloo process. Prints JSON: the dtype of the policy's log-probs and of its LM head's weight in
its forward, whether the reference (prepared
as the frozen model is) gives exactly the policy's log-probs, and the largest difference from the
float32 model's.

usage: fsdp_numerics.py MODEL_DIR
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from accelerate import Accelerator
from transformers import AutoModelForImageTextToText, AutoProcessor

from vidrl.engine.rollout import given_responses, sequence_logprobs
from vidrl.models.sharding import Fsdp2


def main(model_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("PORT", "29555"))
    dist.init_process_group("gloo", rank=0, world_size=1)
    acc = Accelerator(cpu=True, mixed_precision="bf16")
    processor = AutoProcessor.from_pretrained(model_dir)
    tok = processor.tokenizer
    tok.padding_side = "left"
    prompts = tok(["how many squares are there?", "colour?"], return_tensors="pt", padding=True)
    gen = given_responses(prompts, tok, ["<answer>2</answer>", "red, then blue"])
    load = lambda: AutoModelForImageTextToText.from_pretrained(model_dir)  # noqa: E731
    with torch.no_grad():
        full = sequence_logprobs(load(), gen)
        sharding = Fsdp2(acc)
        policy, reference = sharding.prepare(load()), sharding.prepare_frozen(load().eval())
        seen = []  # the LM head's weight dtype inside its forward (gathered by FSDP2 there)
        policy.get_output_embeddings().register_forward_pre_hook(
            lambda m, a: seen.append(str(m.weight.dtype))
        )
        lp, ref = sequence_logprobs(policy, gen), sequence_logprobs(reference, gen)
    print(json.dumps({"dtype": str(lp.dtype), "head": seen, "reference_equal": bool(torch.equal(lp, ref)),
                      "max_diff": float((lp - full).abs().max())}))  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
