"""The attention kernel: the fused forward and the CPU's own backward equal explicit attention."""

from __future__ import annotations

import math

import pytest
import torch

from lvt.models.attention_kernel import _CpuBiasedAttention, biased_attention


def explicit_attention(q, k, v, bias):
    """softmax(q·kᵀ/√DA + bias)·v written out."""
    return torch.softmax(q @ k.transpose(2, 3) / math.sqrt(q.shape[-1]) + bias, dim=-1) @ v


@pytest.mark.parametrize("causal", [False, True])
def test_biased_attention_equals_explicit_softmax_with_gradients(causal, monkeypatch):
    monkeypatch.setattr(_CpuBiasedAttention, "examples_per_chunk", 2)  # chunks of 2 and 1
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 12, 4, requires_grad=True) for _ in range(3))
    bias = torch.randn(1, 2, 12, 12)
    if causal:
        bias = bias + torch.full((12, 12), float("-inf")).triu(1)
    bias.requires_grad_()
    grad = torch.randn(3, 2, 12, 4)
    results = []
    for attend in (biased_attention, explicit_attention):
        out = attend(q, k, v, bias)
        results.append((out, *torch.autograd.grad(out, (q, k, v, bias), grad)))
    for actual, expected in zip(*results, strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
