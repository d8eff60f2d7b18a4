"""Pure-torch loss primitives shared by policy losses: KL estimators and aggregation.

Shapes: B sequences, T response tokens; ``mask`` [B, T] is 1 on trained tokens.
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")
AGGREGATIONS = ("token_mean", "sequence_mean", "constant", "micro_token_mean")


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from samples of π_θ, [B, T].

    With d = log π_ref − log π_θ: k1 = −d; k2 = d² / 2; k3 = exp(d) − d − 1 (unbiased, ≥ 0,
    low variance: Schulman's "approximating KL divergence").
    """
    d = ref_logprobs - logprobs
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.expm1(d) - d
    raise ValueError(f"unknown KL estimator {estimator!r}; valid choices: {', '.join(KL_ESTIMATORS)}")


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    step_tokens: float,
    step_sequences: float,
    max_length: int | None = None,
    micro_batches: int = 1,
) -> torch.Tensor:
    """This micro-batch's share of the optimizer step's loss; summed over micro-batches (and
    ranks) it equals the loss of the whole step at once.

    ``token_mean``: Σ l·m / step_tokens (verl, VITAL, TRL's ``dapo``). ``sequence_mean``:
    Σ_seq (Σ_t l·m / Σ_t m) / step_sequences (DeepSeekMath, DeepVideo-R1). ``constant``: Σ l·m /
    (max_length · step_sequences) (Dr. GRPO: a fixed normaliser, no length bias).
    ``micro_token_mean``: Σ l·m / Σ m of this micro-batch / ``micro_batches`` (the step's
    micro-batch count over all ranks): the mean of each micro-batch's token mean (TRL's
    ``bnpo``; it depends on how the step is cut, the others do not). Empty sequences add 0.
    """
    m = mask.to(per_token.dtype)
    if mode == "micro_token_mean":
        if micro_batches < 1:
            raise ValueError(
                f"aggregation 'micro_token_mean' needs micro_batches >= 1, got {micro_batches!r}"
            )
        return (per_token * m).sum() / m.sum().clamp(min=1.0) / micro_batches
    if mode == "token_mean":
        return (per_token * m).sum() / max(step_tokens, 1.0)
    if mode == "sequence_mean":
        per_seq = (per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        return per_seq.sum() / max(step_sequences, 1.0)
    if mode == "constant":
        if not max_length or max_length < 1:
            raise ValueError(f"aggregation 'constant' needs max_length >= 1, got {max_length!r}")
        return (per_token * m).sum() / (max_length * max(step_sequences, 1.0))
    raise ValueError(f"unknown aggregation {mode!r}; valid choices: {', '.join(AGGREGATIONS)}")


def top_fraction(values: torch.Tensor, mask: torch.Tensor, frac: float) -> torch.Tensor:
    """[b, T] bool: the k positions where ``mask`` [b, T] is 1 with the largest ``values`` [b, T],
    k = ⌈frac · N⌉ of the N such positions, at least 1 (the high-entropy token selection of
    "Beyond the 80/20 rule", arXiv 2506.01939, as its released code counts k); none when N = 0."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac!r}")
    keep = mask.bool()
    out = torch.zeros_like(keep)
    n = int(keep.sum())
    if n:
        k = max(1, int(n * frac + 0.9999))
        chosen = torch.topk(values[keep].float(), k).indices
        out[keep] = torch.zeros(n, dtype=torch.bool, device=out.device).index_fill(0, chosen, True)
    return out


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """The mean of ``x`` [b, T] over the positions where ``mask`` [b, T] is 1 (0 when none), as a
    float: for a loss's metrics."""
    m = mask.to(x.dtype)
    return float((x.detach() * m).sum() / m.sum().clamp(min=1))
