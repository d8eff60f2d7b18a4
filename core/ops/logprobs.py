"""Pure-torch references of the token log-prob primitives (docs/kernels.md).

Both are autograd Functions that work on row chunks: the forward keeps only per-row statistics
(log-sum-exp, entropy), the backward recomputes each chunk's softmax, so no full [N, V] float32
tensor ever exists — only one [chunk, V] block at a time. Math is float32 on bf16/fp16/fp32 input
(float64 input stays float64). With z = logits / T, p = softmax(z):

    logprob = z[target] − logsumexp(z)          d/dz = onehot(target) − p
    entropy = −Σ p·log p                         d/dz = −p · (log p + entropy)

and d/dlogits = (d/dz) / T. Rows whose target is ``ignore_index`` get logprob 0, entropy 0 and a
zero gradient.
"""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: rows per chunk: bounds each float32 temporary to chunk·V·4 bytes (32 MiB: 55 rows at V = 152064)
CHUNK_BYTES = 32 * 2**20


def check_logprob_args(
    logits_shape: tuple[int, int],
    dtype: torch.dtype,
    targets: torch.Tensor,
    temperature: float,
    ignore_index: int,
) -> None:
    """Shared argument checks of ``token_logprobs`` and ``linear_token_logprobs``: they raise
    ValueError saying what was wrong, the value, and what is valid."""
    n, v = logits_shape
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"logits/hidden dtype {dtype} is not supported; valid: {FLOAT_DTYPES}")
    if targets.dim() != 1 or targets.numel() != n:
        raise ValueError(f"targets must have shape [{n}], got {list(targets.shape)}")
    if targets.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"targets must be int32 or int64, got {targets.dtype}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= v))
    if n and bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"targets[{i}] = {int(targets[i])} is outside [0, {v}) and is not ignore_index ({ignore_index})"
        )


def check_linear_args(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    ignore_index: int,
    chunk_size: int | None,
) -> None:
    """``check_logprob_args`` plus the shapes, dtypes and devices of hidden [N, H] and weight [V, H]."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"need hidden [N, H] and weight [V, H], got {list(hidden.shape)} and {list(weight.shape)}"
        )
    if hidden.dtype != weight.dtype or hidden.device != weight.device:
        raise ValueError(
            f"hidden and weight must share dtype and device, got {hidden.dtype}/{hidden.device} "
            f"and {weight.dtype}/{weight.device}"
        )
    check_logprob_args((hidden.shape[0], weight.shape[0]), hidden.dtype, targets, temperature, ignore_index)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def chunk_rows(v: int) -> int:
    return max(1, CHUNK_BYTES // (4 * max(v, 1)))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def chunk_forward(
    x: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, inv_t: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One chunk: x [n, V] raw logits → (logprob [n], lse [n], entropy [n] or None).

    At most two [n, V] temporaries in the compute dtype (one without entropy)."""
    z = x.to(_compute_dtype(x.dtype)) * inv_t
    lse = torch.logsumexp(z, dim=-1)
    lp = z.gather(1, targets.clamp(min=0).long()[:, None]).squeeze(1) - lse
    lp = lp.masked_fill_(~valid, 0.0)
    ent = None
    if with_entropy:  # −Σ p·log p, not lse − Σ p·z: no cancellation at large z
        logp = z.sub_(lse[:, None]).clamp_(min=torch.finfo(z.dtype).min)  # −inf → finite, and p = 0 there
        ent = -(logp.exp() * logp).sum(-1)
        ent = ent.masked_fill_(~valid, 0.0)
    return lp, lse, ent


def chunk_grad(
    x: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    lse: torch.Tensor,
    ent: torch.Tensor | None,
    g_lp: torch.Tensor | None,
    g_ent: torch.Tensor | None,
    inv_t: float,
) -> torch.Tensor:
    """Gradient wrt the raw logits x [n, V] of Σ g_lp·logprob + Σ g_ent·entropy, in compute dtype.

    d/dz = g_lp·(onehot − p) − g_ent·p·(log p + H); at most two [n, V] temporaries."""
    cdt = _compute_dtype(x.dtype)
    logp = (x.to(cdt) * inv_t).sub_(lse[:, None])
    p = logp.exp()
    keep = valid.to(cdt)
    g_lp = torch.zeros_like(lse) if g_lp is None else g_lp.to(cdt) * keep
    if g_ent is not None and ent is not None:
        coef = logp.add_(ent[:, None]).mul_((-g_ent.to(cdt) * keep)[:, None]).sub_(g_lp[:, None])
        dz = coef.mul_(p).masked_fill_(p == 0, 0.0)  # p = 0 where log p = −inf: no 0·inf NaN
    else:
        dz = p.mul_(-g_lp[:, None])
    dz.scatter_add_(1, targets.clamp(min=0).long()[:, None], g_lp[:, None])
    return dz.mul_(inv_t)


class TokenLogprobs(torch.autograd.Function):
    """Reference autograd Function; use ``vidrl.ops.token_logprobs``."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, with_entropy, ignore_index, inplace_backward):
        n, v = logits.shape
        cdt = _compute_dtype(logits.dtype)
        lp = logits.new_empty(n, dtype=cdt)
        lse = logits.new_empty(n, dtype=cdt)
        ent = logits.new_empty(n, dtype=cdt) if with_entropy else None
        valid = targets != ignore_index
        step = chunk_rows(v)
        for s in range(0, n, step):
            e = s + step
            lp[s:e], lse[s:e], ent_c = chunk_forward(
                logits[s:e], targets[s:e], valid[s:e], 1 / temperature, with_entropy
            )
            if with_entropy:
                ent[s:e] = ent_c
        ctx.save_for_backward(logits, targets, valid, lse, ent if with_entropy else lse)
        ctx.meta = (temperature, with_entropy, inplace_backward)
        ctx.mark_non_differentiable(lse)
        return (lp, ent) if with_entropy else (lp, lse)

    @staticmethod
    def backward(ctx, g_lp, g_second):
        logits, targets, valid, lse, ent = ctx.saved_tensors
        temperature, with_entropy, inplace = ctx.meta
        grad = logits if inplace else torch.empty_like(logits)
        step = chunk_rows(logits.shape[1])
        for s in range(0, logits.shape[0], step):
            e = s + step
            g_ent = g_second[s:e] if (with_entropy and g_second is not None) else None
            dz = chunk_grad(
                logits[s:e], targets[s:e], valid[s:e], lse[s:e], ent[s:e] if with_entropy else None,
                None if g_lp is None else g_lp[s:e], g_ent, 1 / temperature,
            )  # fmt: skip
            grad[s:e] = dz.to(grad.dtype)
        return grad, None, None, None, None, None


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    *,
    return_entropy: bool = False,
    ignore_index: int = -100,
    inplace_backward: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """log softmax(logits / T)[target] per row, chunked (reference implementation).

    Args:
        logits: [N, V] float16/bfloat16/float32/float64.
        targets: [N] int; ``ignore_index`` marks rows to skip (logprob 0, entropy 0, no gradient).
        temperature: T > 0.
        return_entropy: also return the entropy of softmax(logits / T) per row.
        inplace_backward: write the gradient into ``logits``' storage (the caller must not need
            the logits afterwards); saves one [N, V] buffer.

    Returns:
        logprobs [N] (float32, or float64 for float64 input), and entropy [N] if asked.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, V], got shape {list(logits.shape)}")
    check_logprob_args(tuple(logits.shape), logits.dtype, targets, temperature, ignore_index)
    lp, second = TokenLogprobs.apply(
        logits, targets, float(temperature), return_entropy, ignore_index, inplace_backward
    )
    return (lp, second) if return_entropy else lp


class LinearTokenLogprobs(torch.autograd.Function):
    """Reference autograd Function; use ``vidrl.ops.linear_token_logprobs``."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, with_entropy, ignore_index, chunk):
        n = hidden.shape[0]
        cdt = _compute_dtype(hidden.dtype)
        lp, lse = hidden.new_empty(n, dtype=cdt), hidden.new_empty(n, dtype=cdt)
        ent = hidden.new_empty(n, dtype=cdt) if with_entropy else None
        valid = targets != ignore_index
        for s in range(0, n, chunk):
            e = s + chunk
            logits = hidden[s:e] @ weight.T  # [chunk, V] in the input dtype; the only [·, V] buffer
            lp[s:e], lse[s:e], ent_c = chunk_forward(
                logits, targets[s:e], valid[s:e], 1 / temperature, with_entropy
            )
            if with_entropy:
                ent[s:e] = ent_c
        ctx.save_for_backward(hidden, weight, targets, valid, lse, ent if with_entropy else lse)
        ctx.meta = (temperature, with_entropy, chunk)
        ctx.mark_non_differentiable(lse)
        return (lp, ent) if with_entropy else (lp, lse)

    @staticmethod
    def backward(ctx, g_lp, g_second):
        hidden, weight, targets, valid, lse, ent = ctx.saved_tensors
        temperature, with_entropy, chunk = ctx.meta
        want_h, want_w = ctx.needs_input_grad[:2]  # a frozen head (LoRA) needs no [V, H] gradient
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight) if want_w else None  # the weight's dtype, one rounding a chunk
        for s in range(0, hidden.shape[0], chunk):
            e = s + chunk
            logits = hidden[s:e] @ weight.T
            g_ent = g_second[s:e] if (with_entropy and g_second is not None) else None
            dz = chunk_grad(
                logits, targets[s:e], valid[s:e], lse[s:e], ent[s:e] if with_entropy else None,
                None if g_lp is None else g_lp[s:e], g_ent, 1 / temperature,
            ).to(weight.dtype)  # fmt: skip
            if want_h:
                grad_h[s:e] = dz @ weight
            if want_w:
                grad_w.addmm_(dz.T, hidden[s:e])
        return grad_h, grad_w, None, None, None, None, None


def linear_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    *,
    return_entropy: bool = False,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``token_logprobs(hidden @ weight.T, ...)`` without materialising [N, V] (reference).

    Args:
        hidden: [N, H] final hidden states; weight: [V, H] LM head (same dtype, same device).
        targets, temperature, return_entropy, ignore_index: as in ``token_logprobs``.
        chunk_size: rows per chunk (default: a [chunk, V] float32 block of about 32 MiB).

    Returns:
        logprobs [N] (and entropy [N]); gradients flow to ``hidden`` and ``weight``.
    """
    check_linear_args(hidden, weight, targets, temperature, ignore_index, chunk_size)
    chunk = chunk_size or chunk_rows(weight.shape[0])
    lp, second = LinearTokenLogprobs.apply(
        hidden, weight, targets, float(temperature), return_entropy, ignore_index, chunk
    )
    return (lp, second) if return_entropy else lp
