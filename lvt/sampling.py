"""Plain autoregressive sampling of code videos, exactly as the original `sample_video` (§5).

Slices in index order; inside a slice, positions in raster order, skipping positions in the
priming frames; the encoder runs once per slice (at its first sampled position) and the whole
decoder is recomputed over the whole slice for every position (no caching). At each position the
codebooks are drawn one after another with one `torch.multinomial` call per codebook, so a fixed
seed reproduces the original's random stream draw for draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lvt.models.transformer import VideoTransformer, slice_abc, slice_context, take_slice


def positions_to_sample(
    shape: Sequence[int], abc: Sequence[int], stride: Sequence[int], n_prime: int
) -> list[tuple[int, int, int]]:
    """Positions (t, h, w) of slice `abc` of a (T, H, W) video outside the first `n_prime`
    frames, in raster order."""
    t, h, w = (n // s for n, s in zip(shape, stride, strict=True))
    frames = [i for i in range(t) if abc[0] + i * stride[0] >= n_prime]
    return [(i, j, k) for i in frames for j in range(h) for k in range(w)]


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
    plan = []
    for index in range(config.num_slices):
        abc = slice_abc(index, config.stride)
        positions = positions_to_sample(video.shape[2:], abc, config.stride, n_prime)
        if positions:  # a slice lying entirely in the priming frames needs no encoder call
            plan.append((index, abc, positions))
    total, done = sum(len(positions) for _, _, positions in plan), 0
    for index, abc, positions in plan:
        slice_idx = torch.full((video.shape[0],), index, dtype=torch.long, device=video.device)
        z = model.encode(slice_context(video, abc, config), slice_idx)
        codes = take_slice(video, abc, config.stride).clone()
        for t, h, w in positions:
            hidden = model.predictor.norm(model.decode(codes, z)[:, :, t, h, w])
            for k in range(config.codebooks):
                logits = model.predictor.codebook_logits(hidden, codes[:, :k, t, h, w], k)
                p = F.softmax(logits / temperature, dim=1)
                codes[:, k, t, h, w] = torch.multinomial(p, 1, generator=generator)[:, 0]
            done += 1
            if progress is not None:
                progress(done, total)
        take_slice(video, abc, config.stride).copy_(codes)
    return video
