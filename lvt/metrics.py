"""Plain score functions shared by training logs and the scoring stages: PSNR, SSIM, entropy."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def frame_psnr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """PSNR in dB of each uint8 frame (N, H, W, C) of `estimate` against `reference`."""
    error = reference.astype(np.float64) - estimate.astype(np.float64)
    mse = np.mean((error / 255.0) ** 2, axis=tuple(range(1, error.ndim)))
    return -10.0 * np.log10(np.maximum(mse, 1e-12))


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_METHOD = (f"Wang et al. 2004: {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian window, sigma "
               f"{SSIM_SIGMA}, K1 {SSIM_K1}, K2 {SSIM_K2}, data range 255, window positions "
               "inside the image, mean over positions and RGB channels")


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian weights (float64); the 2-D window is their outer product."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    data_range: float = 255.0,
) -> torch.Tensor:
    """SSIM (float64) of each image pair (N, H, W, C), as `SSIM_METHOD` says.

    This is scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1)` and Wang et al.'s reference code.
    """
    x = torch.as_tensor(reference).to(torch.float64)
    y = torch.as_tensor(estimate).to(device=x.device, dtype=torch.float64)
    if x.shape != y.shape or x.ndim != 4 or min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"expected two image batches (N, H, W, C) of the same shape, at least "
                         f"{SSIM_WINDOW} pixels high and wide; got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    channels = x.shape[3]
    x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    window = gaussian_window().to(x.device)
    groups = 5 * channels
    moments = F.conv2d(moments, window.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    moments = F.conv2d(moments, window.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    mean_x, mean_y, xx, yy, xy = moments.split(channels, dim=1)
    var_x, var_y = xx - mean_x**2, yy - mean_y**2
    cov = xy - mean_x * mean_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(dim=(1, 2, 3))


def entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to `counts`."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def nats_to_bits(nats: float) -> float:
    """A quantity of information in nats, in bits."""
    return nats / math.log(2)
