"""Plain autoregressive sampling of code videos, exactly as the original `sample_video`.

Slices in index order; inside a slice, positions in raster order, skipping positions in the
priming frames; the encoder runs once per slice (at its first sampled position) and the whole
decoder is recomputed over the whole slice for every position (no caching). At each position the
codebooks are drawn one after another with one `torch.multinomial` call per codebook, so a fixed
seed reproduces the original's random stream draw for draw.

Reference: `sample_video` in the authors' code at commit 0899c21,
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/meta_arch/vt.py
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lvt.models.transformer import (
    Abc,
    ChannelPredictor,
    TransformerConfig,
    VideoTransformer,
    slice_abc,
    slice_context,
    take_slice,
)

Position = tuple[int, int, int]


def positions_to_sample(
    shape: Sequence[int], abc: Sequence[int], stride: Sequence[int], n_prime: int
) -> list[Position]:
    """Positions (t, h, w) of slice `abc` of a (T, H, W) video outside the first `n_prime`
    frames, in raster order."""
    t, h, w = (n // s for n, s in zip(shape, stride, strict=True))
    frames = [i for i in range(t) if abc[0] + i * stride[0] >= n_prime]
    return [(i, j, k) for i in frames for j in range(h) for k in range(w)]


def sampling_plan(
    config: TransformerConfig, shape: Sequence[int], n_prime: int
) -> list[tuple[int, Abc, list[Position]]]:
    """(slice index, slice, positions to sample) of every slice with something to sample."""
    plan = []
    for index in range(config.num_slices):
        abc = slice_abc(index, config.stride)
        positions = positions_to_sample(shape, abc, config.stride, n_prime)
        if positions:  # a slice lying entirely in the priming frames needs no encoder call
            plan.append((index, abc, positions))
    return plan


def encode_slice(model: VideoTransformer, video: Tensor, index: int, abc: Abc) -> Tensor:
    """Encoder output z (B, D, t, h, w) for slice `abc` (index `index`) of the current video."""
    slice_idx = torch.full((video.shape[0],), index, dtype=torch.long, device=video.device)
    return model.encode(slice_context(video, abc, model.config), slice_idx)


def draw_codes(
    predictor: ChannelPredictor, y: Tensor, temperature: float, generator: torch.Generator | None
) -> Tensor:
    """The NC codes (B, NC) of one position from its decoder output y (B, D): codebook after
    codebook, one `torch.multinomial` call each on softmax(logits / temperature)."""
    hidden = predictor.norm(y)
    codes = torch.empty(y.shape[0], len(predictor.output), dtype=torch.long, device=y.device)
    for k in range(codes.shape[1]):
        p = F.softmax(predictor.codebook_logits(hidden, codes[:, :k], k) / temperature, dim=1)
        codes[:, k] = torch.multinomial(p, 1, generator=generator)[:, 0]
    return codes


@torch.no_grad()
def sample_codes(
    model: VideoTransformer,
    prime_video: Tensor,
    n_prime: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Complete a code video whose first `n_prime` frames are given.

    prime_video (B, NC, T, H, W) int64: frames ≥ n_prime are overwritten (their content is never
    visible to the model before that). `progress(done, total)` is called after every position.
    Returns the sampled video (B, NC, T, H, W).
    """
    config = model.config
    video = prime_video.clone()
    plan = sampling_plan(config, video.shape[2:], n_prime)
    total, done = sum(len(positions) for _, _, positions in plan), 0
    for index, abc, positions in plan:
        z = encode_slice(model, video, index, abc)
        codes = take_slice(video, abc, config.stride).clone()
        for t, h, w in positions:
            y = model.decode(codes, z)[:, :, t, h, w]
            codes[:, :, t, h, w] = draw_codes(model.predictor, y, temperature, generator)
            done += 1
            if progress is not None:
                progress(done, total)
        take_slice(video, abc, config.stride).copy_(codes)
    return video
