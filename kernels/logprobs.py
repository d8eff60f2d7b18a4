"""Triton token log-probs: forward (online log-sum-exp over V blocks) and backward.

One program per row. Loads are upcast to float32 at once (the interpreter mishandles bf16
arithmetic, and the maths is float32 anyway); row offsets are int64 since N·V can pass 2³¹; the
tail block of V is masked so it adds nothing. No libdevice calls, no autotune.

Layers: ``launch_forward`` / ``launch_backward`` fill caller-given buffers (tests poison them with
NaN first); ``TokenLogprobs`` is the autograd Function; ``token_logprobs`` the functional API with
the same contract as ``vidrl.ops.token_logprobs``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from vidrl import ops

SUPPORTED = (torch.float16, torch.bfloat16, torch.float32)


def block_v(v: int) -> int:
    """Columns per step: 4096 on a GPU (16 floats per thread at 8 warps), small when interpreting."""
    cap = 128 if os.environ.get("TRITON_INTERPRET") == "1" else 4096
    return min(cap, triton.next_power_of_2(max(v, 16)))


@triton.jit
def _forward_kernel(
    x_ptr, stride_x, t_ptr, lp_ptr, lse_ptr, ent_ptr, V, inv_t, ignore_index,
    WITH_ENTROPY: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x
    target = tl.load(t_ptr + row).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    m = tl.full([BLOCK], float("-inf"), tl.float32)  # per-lane running max
    s = tl.zeros([BLOCK], tl.float32)  # per-lane Σ exp(z − m)
    sd = tl.zeros([BLOCK], tl.float32)  # per-lane Σ exp(z − m)·(z − m): entropy without cancellation
    for off in range(0, V, BLOCK):
        idx = off + cols
        z = tl.load(x_row + idx, mask=idx < V, other=float("-inf")).to(tl.float32) * inv_t
        m_new = tl.maximum(m, z)
        alpha = tl.where(m == m_new, 1.0, tl.exp(m - m_new))  # both −inf: keep, never NaN
        term = tl.where(z == float("-inf"), 0.0, tl.exp(z - m_new))
        if WITH_ENTROPY:
            shift = tl.where(s > 0.0, (m - m_new) * s, 0.0)
            sd = alpha * (sd + shift) + tl.where(term > 0.0, term * (z - m_new), 0.0)
        s = s * alpha + term
        m = m_new
    m_row = tl.max(m, axis=0)
    scale = tl.where(s > 0.0, tl.exp(m - m_row), 0.0)
    total = tl.sum(s * scale, axis=0)
    lse = m_row + tl.log(total)
    valid = target != ignore_index
    safe_t = tl.where(valid, target, 0)
    z_t = tl.load(x_row + safe_t).to(tl.float32) * inv_t
    tl.store(lp_ptr + row, tl.where(valid, z_t - lse, 0.0))
    tl.store(lse_ptr + row, lse)
    if WITH_ENTROPY:  # H = log Σ e^(z−m) − E[z − m], with every lane moved to the row max
        mean_d = tl.sum(scale * (sd + tl.where(s > 0.0, (m - m_row) * s, 0.0)), axis=0) / total
        ent = tl.log(total) - mean_d
        tl.store(ent_ptr + row, tl.where(valid, ent, 0.0))


@triton.jit
def _backward_kernel(
    x_ptr, stride_x, g_ptr, stride_g, t_ptr, lse_ptr, ent_ptr, glp_ptr, gent_ptr, V, inv_t, ignore_index,
    HAS_GLP: tl.constexpr, HAS_GENT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x
    g_row = g_ptr + row * stride_g
    target = tl.load(t_ptr + row).to(tl.int64)
    keep = (target != ignore_index).to(tl.float32)
    lse = tl.load(lse_ptr + row)
    g_lp = tl.load(glp_ptr + row).to(tl.float32) * keep if HAS_GLP else 0.0
    g_ent = tl.load(gent_ptr + row).to(tl.float32) * keep if HAS_GENT else 0.0
    ent = tl.load(ent_ptr + row) if HAS_GENT else 0.0
    cols = tl.arange(0, BLOCK)
    for off in range(0, V, BLOCK):
        idx = off + cols
        in_row = idx < V
        z = tl.load(x_row + idx, mask=in_row, other=0.0).to(tl.float32) * inv_t
        p = tl.exp(z - lse)
        dz = tl.where(idx == target, g_lp, 0.0) - p * g_lp
        if HAS_GENT:  # dH/dz = −p·(log p + H)
            dz -= tl.where(p > 0.0, p * (z - lse + ent), 0.0) * g_ent
        tl.store(g_row + idx, (dz * inv_t).to(g_ptr.dtype.element_ty), mask=in_row)


def check_supported(x: torch.Tensor, what: str) -> None:
    """This kernel computes in float32: it refuses float64 (use VIDRL_KERNELS=off) rather than
    silently lowering precision; it needs unit stride along V."""
    if x.dtype not in SUPPORTED:
        raise ValueError(
            f"triton {what}: dtype {x.dtype} is not supported (valid: {SUPPORTED}); "
            "set VIDRL_KERNELS=off to use the float64-capable reference"
        )
    if x.dim() == 2 and x.shape[1] > 1 and x.stride(1) != 1:
        raise ValueError(f"triton {what}: the last dimension must be contiguous, got strides {x.stride()}")


def launch_forward(x, targets, lp, lse, ent, inv_t: float, ignore_index: int) -> None:
    """Fill lp, lse (and ent unless None), each [N] float32, from logits x [N, V]."""
    n, v = x.shape
    if n == 0:
        return
    _forward_kernel[(n,)](
        x, x.stride(0), targets, lp, lse, lp if ent is None else ent, v, inv_t, ignore_index,
        WITH_ENTROPY=ent is not None, BLOCK=block_v(v), num_warps=8,
    )  # fmt: skip


def launch_backward(x, grad, targets, lse, ent, g_lp, g_ent, inv_t: float, ignore_index: int) -> None:
    """Write d(Σ g_lp·lp + Σ g_ent·ent)/dx into ``grad`` [N, V] (which may be ``x`` itself)."""
    n, v = x.shape
    if n == 0:
        return
    _backward_kernel[(n,)](
        x, x.stride(0), grad, grad.stride(0), targets, lse, lse if ent is None else ent,
        lse if g_lp is None else g_lp, lse if g_ent is None else g_ent, v, inv_t, ignore_index,
        HAS_GLP=g_lp is not None, HAS_GENT=g_ent is not None, BLOCK=block_v(v), num_warps=8,
    )  # fmt: skip


class TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, temperature, with_entropy, ignore_index, inplace_backward):
        n = logits.shape[0]
        lp = logits.new_empty(n, dtype=torch.float32)
        lse = torch.empty_like(lp)
        ent = torch.empty_like(lp) if with_entropy else None
        launch_forward(logits, targets, lp, lse, ent, 1 / temperature, ignore_index)
        ctx.save_for_backward(logits, targets, lse, ent if with_entropy else lse)
        ctx.meta = (temperature, with_entropy, ignore_index, inplace_backward)
        ctx.mark_non_differentiable(lse)
        return (lp, ent) if with_entropy else (lp, lse)

    @staticmethod
    def backward(ctx, g_lp, g_second):
        logits, targets, lse, ent = ctx.saved_tensors
        temperature, with_entropy, ignore_index, inplace = ctx.meta
        grad = logits if inplace else torch.empty_like(logits)
        g_ent = g_second.contiguous() if (with_entropy and g_second is not None) else None
        g_lp = None if g_lp is None else g_lp.contiguous()
        launch_backward(
            logits,
            grad,
            targets,
            lse,
            ent if with_entropy else None,
            g_lp,
            g_ent,
            1 / temperature,
            ignore_index,
        )
        return grad, None, None, None, None, None


def token_logprobs(
    logits, targets, temperature=1.0, *, return_entropy=False, ignore_index=-100, inplace_backward=False
):
    """Same contract as ``vidrl.ops.token_logprobs``; float16/bfloat16/float32 logits only."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, V], got shape {list(logits.shape)}")
    check_supported(logits, "token_logprobs")
    ops.check_logprob_args(tuple(logits.shape), logits.dtype, targets, temperature, ignore_index)
    lp, second = TokenLogprobs.apply(
        logits, targets.contiguous(), float(temperature), return_entropy, ignore_index, inplace_backward
    )
    return (lp, second) if return_entropy else lp
