"""Sampling code videos: one entry point, `complete_videos`, and the two samplers behind it.

Slices in index order; inside a slice, positions in raster order, skipping positions in the
priming frames; the encoder runs once per slice (at its first sampled position). At each position
the codebooks are drawn one after another with one `torch.multinomial` call per codebook, so a
fixed seed reproduces the original's random stream draw for draw.

Both samplers run this one loop (`run_sampler`) and differ only in how they compute the decoder
output at a position:

- `sample_codes`, the plain sampler, exactly as the original `sample_video`: the whole decoder is
  recomputed over the whole slice for every position (no caching). It is the reference.
- `sample_codes_fast`, which `complete_videos` runs: each position is computed once
  (lvt.models.incremental), so a seed gives the same codes; only the summation order of the
  floating-point work differs (tests/test_sampling.py).

Reference: `sample_video` in the authors' code at commit 0899c21,
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/meta_arch/vt.py
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lvt.models.incremental import IncrementalDecoder
from lvt.models.transformer import (
    Abc,
    ChannelPredictor,
    LatentVideoTransformer,
    TransformerConfig,
    slice_abc,
    slice_context,
    take_slice,
)

Progress = Callable[[int, int], None]
"""Called with (positions sampled, positions to sample) after every sampled position."""
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


def encode_slice(model: LatentVideoTransformer, video: Tensor, index: int, abc: Abc) -> Tensor:
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


class RecomputingDecoder:
    """The plain sampler's decoder, as the original's: the whole decoder recomputed over the whole
    slice for every position. It reads the slice's codes as the sampler fills them in."""

    def __init__(self, model: LatentVideoTransformer) -> None:
        self.model = model
        self.codes = self.z = torch.empty(0)

    def start(self, slice_codes: Tensor, z: Tensor, primed_frames: int) -> None:
        """Begin a slice: its codes (B, NC, t, h, w), filled in place, and encoder output z."""
        self.codes, self.z = slice_codes, z

    def decode(self, t: int, h: int, w: int) -> Tensor:
        """Decoder output y (B, D) at slice position (t, h, w)."""
        return self.model.decode(self.codes, self.z)[:, :, t, h, w]

    def write(self, t: int, h: int, w: int, codes: Tensor) -> None:
        """Nothing to do: `decode` reads the slice's codes themselves."""


def run_sampler(
    model: LatentVideoTransformer,
    decoder: RecomputingDecoder | IncrementalDecoder,
    prime_video: Tensor,
    n_prime: int,
    temperature: float,
    generator: torch.Generator | None,
    progress: Progress | None,
) -> Tensor:
    """Complete a code video with `decoder` computing the decoder output at each position; the
    slices, positions and random draws are the same whichever decoder it is."""
    config = model.config
    video = prime_video.clone()
    plan = sampling_plan(config, video.shape[2:], n_prime)
    total, done = sum(len(positions) for _, _, positions in plan), 0
    for index, abc, positions in plan:
        codes = take_slice(video, abc, config.stride).clone()
        decoder.start(codes, encode_slice(model, video, index, abc), primed_frames=positions[0][0])
        for t, h, w in positions:
            drawn = draw_codes(model.predictor, decoder.decode(t, h, w), temperature, generator)
            codes[:, :, t, h, w] = drawn
            decoder.write(t, h, w, drawn)
            done += 1
            if progress is not None:
                progress(done, total)
        take_slice(video, abc, config.stride).copy_(codes)
    return video


@torch.no_grad()
def sample_codes(
    model: LatentVideoTransformer,
    prime_video: Tensor,
    n_prime: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Complete a code video whose first `n_prime` frames are given, recomputing the decoder
    over the whole slice for every position (the reference).

    prime_video (B, NC, T, H, W) int64: frames ≥ n_prime are overwritten (their content is never
    visible to the model before that). `progress(done, total)` is called after every position.
    Returns the sampled video (B, NC, T, H, W).
    """
    return run_sampler(model, RecomputingDecoder(model), prime_video, n_prime, temperature,
                       generator, progress)


@torch.no_grad()
def sample_codes_fast(
    model: LatentVideoTransformer,
    prime_video: Tensor,
    n_prime: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """`sample_codes` with incremental decoding: same arguments, same draws."""
    stride = model.config.stride
    shape = [n // s for n, s in zip(prime_video.shape[2:], stride, strict=True)]
    decoder = IncrementalDecoder(model.decoder, prime_video.shape[0], shape,
                                 model.config.decoder_block)
    return run_sampler(model, decoder, prime_video, n_prime, temperature, generator, progress)


def complete_videos(
    transformer: LatentVideoTransformer,
    prime_codes: Tensor,
    frames: int,
    temperature: float,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Sample `frames`-long code videos (B, codebooks, T, h, w) that start with `prime_codes`.

    `prime_codes` (B, codebooks, n_prime, h, w) are kept fixed, as in the reference sampler;
    `progress(done, total)` is called after every sampled position.
    """
    batch, codebooks, n_prime, height, width = prime_codes.shape
    video = prime_codes.new_zeros((batch, codebooks, frames, height, width))
    video[:, :, :n_prime] = prime_codes
    return sample_codes_fast(transformer, video, n_prime, temperature=temperature,
                             generator=generator, progress=progress)
