"""Trained models in use: loading the VQ-VAE and transformer files, checking that they fit
each other and a code grid, turning frames into codes and codes into frames, and choosing the
videos long enough to complete or score."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lvt.checkpoints import load_model
from lvt.config import tiling_misfit
from lvt.data.dataset import VideoArrays
from lvt.errors import InputError
from lvt.images import frames_to_images, images_to_frames
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class TrainedModels:
    """A VQ-VAE and a transformer over its codes, in eval mode, with their configs."""

    vqvae: VQVAE
    vqvae_config: VQVAEConfig
    transformer: LatentVideoTransformer
    transformer_config: TransformerConfig


def load_trained_models(
    vqvae_file: Path, transformer_file: Path, device: torch.device
) -> TrainedModels:
    """Load both model files for inference; errors name the file that is wrong."""
    vqvae, vqvae_config = load_model(vqvae_file, "vqvae", map_location=device)
    transformer, transformer_config = load_model(transformer_file, "transformer",
                                                 map_location=device)
    return TrainedModels(vqvae.eval(), vqvae_config, transformer.eval(), transformer_config)


@torch.no_grad()
def encode_frames(vqvae: VQVAE, frames: np.ndarray, device: torch.device) -> np.ndarray:
    """uint8 frames (N, H, W, 3) -> codes (N, codebooks, H/4, W/4) int64."""
    return vqvae.encode(frames_to_images(frames, device)).cpu().numpy()


@torch.no_grad()
def decode_codes(
    vqvae: VQVAE, codes: np.ndarray | torch.Tensor, device: torch.device
) -> np.ndarray:
    """Codes (N, codebooks, h, w) -> uint8 frames (N, 4h, 4w, 3)."""
    codes = torch.as_tensor(codes, dtype=torch.int64, device=device)
    return images_to_frames(vqvae.decode(codes))


def decode_videos(vqvae: VQVAE, videos: torch.Tensor, device: torch.device) -> np.ndarray:
    """Code videos (B, codebooks, T, h, w) -> uint8 videos (B, T, 4h, 4w, 3)."""
    batch, codebooks, frames, height, width = videos.shape
    flat = videos.permute(0, 2, 1, 3, 4).reshape(batch * frames, codebooks, height, width)
    decoded = decode_codes(vqvae, flat, device)
    return decoded.reshape(batch, frames, *decoded.shape[1:])


def videos_long_enough(arrays: VideoArrays, frames: int, limit: int | None) -> list[int]:
    """Indices of the videos with at least `frames` frames; the first `limit` (None: all)."""
    eligible = [index for index, length in enumerate(arrays.lengths) if length >= frames]
    return eligible[:limit] if limit else eligible


def check_models_fit(
    vqvae_file: Path,
    vqvae_config: VQVAEConfig,
    transformer_file: Path,
    transformer_config: TransformerConfig,
    grid: tuple[int, int, int],
) -> None:
    """Fail, naming the files, unless the transformer models this VQ-VAE's codes on `grid`.

    `grid` is the code video's (frames, height, width); the subscale stride must divide it and
    the attention blocks must tile each slice.
    """
    if (vqvae_config.codebooks, vqvae_config.codebook_size) != (
        transformer_config.codebooks, transformer_config.codebook_size
    ):
        raise InputError(
            f"{transformer_file} models {transformer_config.codebooks} codebooks of "
            f"{transformer_config.codebook_size} codes, but {vqvae_file} has "
            f"{vqvae_config.codebooks} of {vqvae_config.codebook_size}"
        )
    stride = transformer_config.stride
    misfit = tiling_misfit(grid, stride, transformer_config.encoder_block,
                           transformer_config.decoder_block)
    if misfit is not None and misfit.part == "stride" and misfit.axis == 0:
        raise InputError(f"{grid[0]} frames: the number of frames must be a multiple of the time "
                         f"stride {stride[0]} of {transformer_file}")
    if misfit is not None:
        raise InputError(f"{transformer_file}: its {misfit.message}")
