"""Reading training batches from the HDF5 video arrays."""

from __future__ import annotations

import numpy as np
import torch

from lvt.data.dataset import VideoArrays


def read_items(arrays: VideoArrays, indices: np.ndarray) -> np.ndarray:
    """Items at `indices` (any order, repeats allowed), read in one increasing pass over the file."""
    unique, inverse = np.unique(indices, return_inverse=True)
    return arrays.items(unique)[inverse]


def frames_to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> float images (B, 3, H, W) in [0, 1], as the VQ-VAE takes them."""
    images = torch.from_numpy(frames).to(device, non_blocking=True)
    return images.permute(0, 3, 1, 2).float().div_(255.0)
