"""Attention with a learned additive bias on PyTorch's fused kernels, gradients included.

`biased_attention` computes softmax(q·kᵀ/√DA + bias)·v, the attention of `BlockLocalAttention`
(lvt.models.transformer) whose bias holds its learned relative position tables. On a GPU it is
scaled_dot_product_attention; on a CPU in training it is `_CpuBiasedAttention`, the fused CPU
kernel with a backward pass of its own, because PyTorch's CPU kernel cannot differentiate its mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class _CpuBiasedAttention(torch.autograd.Function):
    """softmax(q·kᵀ/√DA + bias)·v on CPU with the fused kernel and a gradient for the bias.

    PyTorch's fused CPU kernel cannot differentiate its mask, so with a learned bias
    scaled_dot_product_attention would fall back to the plain math and keep every (L, L)
    probability matrix for the backward pass. The forward pass here is the fused kernel,
    keeping only the output and the row-wise log-sum-exp; the backward pass recomputes the
    probabilities in float32 a few examples at a time and derives all four gradients from them
    (the bias gradient summed over the batch).
    """

    examples_per_chunk = 4
    """Examples per pass of the backward: it bounds its two float32 (examples · heads, L, L)
    buffers, which every pass reuses (benchmarks/README.md#attention-backward-on-a-cpu)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        mask = bias.to(q.dtype)
        out, log_sum_exp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, attn_mask=mask
        )
        ctx.save_for_backward(q, k, v, mask, out, log_sum_exp)
        ctx.bias_dtype = bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q, k, v, mask, out, log_sum_exp = ctx.saved_tensors
        n, heads, length, head_dim = q.shape
        scale = 1 / math.sqrt(head_dim)
        q32, k32, v32, dout = (t.float().flatten(0, 1) for t in (q, k, v, grad_out))
        row = (dout * out.float().flatten(0, 1)).sum(-1, keepdim=True)
        log_sum_exp = log_sum_exp.float().flatten(0, 1).unsqueeze(-1)
        grads = [torch.empty(n * heads, length, head_dim) for _ in range(3)]
        grad_bias = torch.zeros(heads, length, length)
        chunk = min(_CpuBiasedAttention.examples_per_chunk, n) * heads
        mask = mask.float().expand(chunk // heads, -1, -1, -1).reshape(chunk, length, length)
        probabilities_buffer = torch.empty(chunk, length, length)
        grad_scores_buffer = torch.empty(chunk, length, length)
        for first in range(0, n * heads, chunk):
            rows = slice(first, min(first + chunk, n * heads))
            size = rows.stop - rows.start
            probabilities, grad_scores = probabilities_buffer[:size], grad_scores_buffer[:size]
            torch.baddbmm(mask[:size], q32[rows], k32[rows].transpose(1, 2), alpha=scale,
                          out=probabilities)
            probabilities.sub_(log_sum_exp[rows]).exp_()
            torch.bmm(dout[rows], v32[rows].transpose(1, 2), out=grad_scores)
            grad_scores.sub_(row[rows]).mul_(probabilities)
            grad_bias += grad_scores.view(-1, heads, length, length).sum(0)
            torch.bmm(grad_scores, k32[rows], out=grads[0][rows])
            torch.bmm(grad_scores.transpose(1, 2), q32[rows], out=grads[1][rows])
            torch.bmm(probabilities.transpose(1, 2), dout[rows], out=grads[2][rows])
        grads[0].mul_(scale)
        grads[1].mul_(scale)
        return (*(g.view(q.shape).to(q.dtype) for g in grads),
                grad_bias.to(ctx.bias_dtype).unsqueeze(0))


def biased_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """softmax(q·kᵀ/√DA + bias)·v with scaled_dot_product_attention's fused kernels.

    q, k, v (N, heads, L, DA); bias (1, heads, L, L), −inf on hidden keys.
    """
    if q.device.type == "cpu" and torch.is_grad_enabled() and bias.requires_grad:
        return _CpuBiasedAttention.apply(q, k, v, bias)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
