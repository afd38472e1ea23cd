"""Conversions between stored uint8 frames and the float images the VQ-VAE works on."""

from __future__ import annotations

import numpy as np
import torch

from lvt.tensors import to_device


def frames_to_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float images (N, 3, H, W) in [0, 1] on `device`."""
    images = to_device(torch.from_numpy(np.ascontiguousarray(frames)), device)
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """Float images (N, 3, H, W) in [0, 1] -> uint8 frames (N, H, W, 3), rounded."""
    frames = images.clamp(0, 1).mul(255.0).round_().to(torch.uint8)
    return frames.permute(0, 2, 3, 1).cpu().numpy()
