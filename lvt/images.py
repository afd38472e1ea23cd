"""Conversions between stored uint8 frames and the float images the VQ-VAE works on."""

from __future__ import annotations

import numpy as np
import torch


def frames_to_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float images (N, 3, H, W) in [0, 1] on `device`.

    For a GPU the frames go through pinned memory, so the copy runs without a staging copy.
    """
    images = torch.from_numpy(np.ascontiguousarray(frames))
    if device.type == "cuda":
        images = images.pin_memory()
    images = images.to(device, non_blocking=True)
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """Float images (N, 3, H, W) in [0, 1] -> uint8 frames (N, H, W, 3), rounded."""
    frames = images.clamp(0, 1).mul(255.0).round_().to(torch.uint8)
    return frames.permute(0, 2, 3, 1).cpu().numpy()
