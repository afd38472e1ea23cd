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
    probabilities a few examples at a time and derives all four gradients from them (the bias
    gradient summed over the batch).
    """

    examples_per_chunk = 8  # bounds the backward's (chunk, heads, L, L) temporaries

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
        grad_out = grad_out.contiguous()
        n, heads, length, _ = q.shape
        scale = 1 / math.sqrt(q.shape[-1])
        grads = [torch.empty(q.shape, dtype=q.dtype) for _ in range(3)]
        grad_bias = torch.zeros(heads, length, length)
        for first in range(0, n, _CpuBiasedAttention.examples_per_chunk):
            rows = slice(first, first + _CpuBiasedAttention.examples_per_chunk)
            qc, kc, vc, dout = (t[rows].flatten(0, 1) for t in (q, k, v, grad_out))
            chunk = qc.shape[0] // heads
            scores = torch.baddbmm(
                mask.expand(chunk, -1, -1, -1).flatten(0, 1), qc, kc.transpose(1, 2), alpha=scale
            ).float()
            probabilities = scores.sub_(log_sum_exp[rows].flatten(0, 1)[..., None].float()).exp_()
            row = (dout.float() * out[rows].flatten(0, 1).float()).sum(-1, keepdim=True)
            grad_scores = torch.bmm(dout, vc.transpose(1, 2)).float().sub_(row).mul_(probabilities)
            grad_bias += grad_scores.view(chunk, heads, length, length).sum(0)
            probabilities, grad_scores = probabilities.to(q.dtype), grad_scores.to(q.dtype)
            grads[0][rows] = (grad_scores @ kc).mul_(scale).view(chunk, heads, length, -1)
            grads[1][rows] = (grad_scores.transpose(1, 2) @ qc).mul_(scale).view_as(grads[0][rows])
            grads[2][rows] = (probabilities.transpose(1, 2) @ dout).view_as(grads[0][rows])
        return *grads, grad_bias.to(ctx.bias_dtype).unsqueeze(0)


def biased_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """softmax(q·kᵀ/√DA + bias)·v with scaled_dot_product_attention's fused kernels.

    q, k, v (N, heads, L, DA); bias (1, heads, L, L), −inf on hidden keys.
    """
    if q.device.type == "cpu" and torch.is_grad_enabled() and bias.requires_grad:
        return _CpuBiasedAttention.apply(q, k, v, bias)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
