"""Plain score functions shared by training logs and the evaluation stage."""

from __future__ import annotations

import math

import numpy as np
import torch


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def frame_psnr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """PSNR in dB of each uint8 frame (N, H, W, C) of `estimate` against `reference`."""
    error = reference.astype(np.float64) - estimate.astype(np.float64)
    mse = np.mean((error / 255.0) ** 2, axis=tuple(range(1, error.ndim)))
    return -10.0 * np.log10(np.maximum(mse, 1e-12))


def entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to `counts`."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def nats_to_bits(nats: float) -> float:
    return nats / math.log(2)
