"""Token log-probs straight from hidden states and the LM head, never materialising [N, V].

Chunked over N: each chunk's logits [n, V] come from one cuBLAS matmul in the input dtype, the
Triton kernels of ``logprobs.py`` reduce them, and the backward recomputes the chunk and writes
the logit gradient over it in place before the two gradient matmuls. The only [·, V] buffer is one
chunk in the input dtype (default budget 512 MiB). ``grad_weight`` accumulates in the weight's
dtype, one rounding per chunk (the matmul itself accumulates in float32).
"""

from __future__ import annotations

import torch

from vidrl import ops
from vidrl.kernels.logprobs import check_supported, launch_backward, launch_forward

CHUNK_BYTES = 512 * 2**20


def default_chunk(v: int, dtype: torch.dtype) -> int:
    return max(1, CHUNK_BYTES // (max(v, 1) * torch.finfo(dtype).bits // 8))


class LinearTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, with_entropy, ignore_index, chunk):
        n = hidden.shape[0]
        lp = hidden.new_empty(n, dtype=torch.float32)
        lse = torch.empty_like(lp)
        ent = torch.empty_like(lp) if with_entropy else None
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            logits = hidden[s:e] @ weight.T
            launch_forward(
                logits,
                targets[s:e],
                lp[s:e],
                lse[s:e],
                None if ent is None else ent[s:e],
                1 / temperature,
                ignore_index,
            )
        ctx.save_for_backward(hidden, weight, targets, lse, ent if with_entropy else lse)
        ctx.meta = (temperature, with_entropy, ignore_index, chunk)
        ctx.mark_non_differentiable(lse)
        return (lp, ent) if with_entropy else (lp, lse)

    @staticmethod
    def backward(ctx, g_lp, g_second):
        hidden, weight, targets, lse, ent = ctx.saved_tensors
        temperature, with_entropy, ignore_index, chunk = ctx.meta
        g_ent = g_second.contiguous() if (with_entropy and g_second is not None) else None
        g_lp = None if g_lp is None else g_lp.contiguous()
        want_h, want_w = ctx.needs_input_grad[:2]  # a frozen head (LoRA) needs no [V, H] gradient
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight) if want_w else None
        n = hidden.shape[0]
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            logits = hidden[s:e] @ weight.T
            launch_backward(
                logits, logits, targets[s:e], lse[s:e], ent[s:e] if with_entropy else None,
                None if g_lp is None else g_lp[s:e], None if g_ent is None else g_ent[s:e],
                1 / temperature, ignore_index,
            )  # fmt: skip
            if want_h:
                grad_h[s:e] = logits @ weight
            if want_w:
                grad_w.addmm_(logits.T, hidden[s:e])
        return grad_h, grad_w, None, None, None, None, None


def linear_token_logprobs(
    hidden, weight, targets, temperature=1.0, *, return_entropy=False, ignore_index=-100, chunk_size=None
):
    """Same contract as ``vidrl.ops.linear_token_logprobs``; float16/bfloat16/float32 only."""
    check_supported(hidden, "linear_token_logprobs")
    ops.check_linear_args(hidden, weight, targets, temperature, ignore_index, chunk_size)
    chunk = chunk_size or default_chunk(weight.shape[0], weight.dtype)
    lp, second = LinearTokenLogprobs.apply(
        hidden, weight, targets.contiguous(), float(temperature), return_entropy, ignore_index, chunk
    )
    return (lp, second) if return_entropy else lp
