"""Per-GPU memory of a run's model before anything is allocated: the model is built on the meta
device from its ``config.json`` (nothing downloaded, no weights read), and its parameters counted.

Exact for what is counted from the model (weights, gradients, AdamW state, the reference copy);
the activations and the generation KV cache follow the usual transformer formulas and are
approximate: activations ≈ 34 · tokens · hidden bytes per decoder layer with bf16 compute and a
fused attention (Korthikanti et al. 2022, arXiv:2205.05198, without the attention-score term),
twice that in float32; with gradient checkpointing, each layer keeps its input (2 or 4 bytes ·
tokens · hidden) and one layer at a time holds the rest. Memory-lean log-probs keep the logits
out (one 32 MiB chunk). Framework overheads (CUDA context, allocator fragmentation) are not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

GIB = 2**30


@dataclass(frozen=True)
class Counts:
    """Parameters of a model: ``total``, ``trainable`` (after freezing or LoRA) and the text
    decoder's ``layers``, ``hidden`` size and KV width (``kv``: heads × head dim)."""

    total: int
    trainable: int
    layers: int
    hidden: int
    kv: int


def meta_model(config: Any, model_config: Any) -> Any:
    """The ``ModelConfig``'s model on the meta device, frozen or with LoRA as it would train."""
    from transformers import AutoModelForImageTextToText

    from vidrl.models.policy import freeze, with_lora

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    if model_config.lora is not None:
        return with_lora(model, model_config.lora)
    freeze(model, model_config.freeze)
    return model


def counts(model: Any) -> Counts:
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return Counts(
        total=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        layers=text.num_hidden_layers, hidden=text.hidden_size, kv=text.num_key_value_heads * head_dim,
    )  # fmt: skip


def per_gpu(c: Counts, *, precision: str, reference: bool, lora: bool, checkpointing: bool, shards: int,
            micro_tokens: int, rollout_tokens: int, ddp_gpus: int = 1) -> dict[str, float]:  # fmt: skip
    """Bytes per GPU, by part, for ``shards`` = 1 (one GPU, or DDP over ``ddp_gpus``: every GPU
    holds everything, and DDP a bucketed copy of the gradients) or N (FSDP2: weights, gradients,
    optimizer state and the reference split N ways, and the whole policy gathered for generation
    in the compute dtype). ``micro_tokens``: tokens of one update micro-batch; ``rollout_tokens``:
    tokens whose KV cache generation holds at once. Every part is counted as held at the same time
    (gradients do live on through the next roll-out)."""
    compute = 2 if precision == "bf16-mixed" else 4
    weights = c.total * 4  # float32 master weights (fp32 and bf16-mixed alike)
    ref = 0 if (lora or not reference) else c.total * 4  # float32, as the policy; LoRA: adapters off
    per_layer = 34 * micro_tokens * c.hidden * compute // 2
    if checkpointing:
        acts = c.layers * micro_tokens * c.hidden * compute + per_layer
    else:
        acts = c.layers * per_layer
    return {
        "weights": weights / shards,
        "ddp_buckets": c.trainable * 4 if ddp_gpus > 1 else 0,  # DDP's copy of the gradients
        "gradients": c.trainable * 4 / shards,
        "optimizer": c.trainable * 8 / shards,  # AdamW: two float32 moments
        "reference": ref / shards,
        "gathered": c.total * compute if shards > 1 else 0,  # FSDP2: generation on the whole policy
        "activations": float(acts),
        "kv_cache": float(2 * c.layers * c.kv * rollout_tokens * compute),
    }


def table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table of ``rows`` (label → part → bytes) in GiB, with totals."""
    parts = list(next(iter(rows.values())))
    lines = ["| setting | " + " | ".join(parts) + " | total |", "| --- " * (len(parts) + 2) + "|"]
    for label, row in rows.items():
        cells = [f"{row[p] / GIB:.1f}" for p in parts] + [f"**{sum(row.values()) / GIB:.1f}**"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
