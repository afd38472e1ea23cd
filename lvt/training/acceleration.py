"""Optional speed-ups of a training step: bfloat16 autocast, TF32 and torch.compile."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from lvt.training.loop import LoopSettings


@dataclass(frozen=True)
class Acceleration:
    """How a task runs its forward pass; the defaults (float32, eager) change nothing."""

    autocast_dtype: torch.dtype | None = None
    compile: bool = False

    @classmethod
    def from_settings(cls, loop: LoopSettings, device: torch.device) -> Acceleration:
        """Read `precision` (auto: bfloat16 on CUDA, float32 elsewhere) and `compile`."""
        precision = loop.precision
        if precision == "auto":
            precision = "bfloat16" if device.type == "cuda" else "float32"
        return cls(torch.bfloat16 if precision == "bfloat16" else None, loop.compile)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Context for the forward pass and loss; backward and optimiser steps stay outside."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def prepare(self, module: nn.Module) -> nn.Module:
        """`module` compiled when asked for (wrap DistributedDataParallel first, then compile)."""
        return torch.compile(module) if self.compile else module


PLAIN = Acceleration()
"""float32 and eager: what precision float32 (or auto on the CPU) without compile gives."""


def set_tf32(enabled: bool) -> None:
    """Let CUDA float32 matrix products and convolutions use TensorFloat-32 (or forbid it)."""
    precision = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
