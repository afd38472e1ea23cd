"""Fast exact sampling: the plain sampler's draws with incremental decoding.

The decoder's output at a position depends only on earlier positions of its slice, so instead of
recomputing the whole slice for every position, each position is computed once: the causal
convolution from the window of already embedded codes around it, the positional encoding and
projected encoder output taken at it, and every masked attention layer with a key/value cache
per block. Positions, slices and random calls follow the plain sampler (`lvt.sampling`) exactly,
so a seed gives the same codes; only the summation order of the floating-point work differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lvt.models.transformer import (
    CausalConv3d,
    SliceDecoder,
    VideoTransformer,
    take_slice,
    to_blocks,
)
from lvt.sampling import draw_codes, encode_slice, sampling_plan


class IncrementalDecoder:
    """The SliceDecoder of one slice shape, computed a few tokens at a time.

    Tokens are addressed as (block, index in the block's raster order); a call must come after
    every earlier token of its block and after the codes of every earlier slice position.
    Per-slice inputs (positional encoding, projected z, convolution windows) are stored in that
    token order, so a step reads them with plain slices.
    """

    def __init__(self, decoder: SliceDecoder, batch: int, shape: Sequence[int],
                 block: Sequence[int]) -> None:
        self.decoder = decoder
        self.block = tuple(block)
        self.shape = tuple(shape)
        device = decoder.positional_encoding.inv_timescales.device
        t, h, w = shape
        self.frame = to_blocks(
            torch.arange(t, device=device).view(1, t, 1, 1, 1).expand(1, t, h, w, 1), block
        )[..., 0]  # (blocks, L): slice frame of every token
        raster = to_blocks(torch.arange(t * h * w, device=device).view(1, t, h, w, 1), block)
        order = torch.empty_like(raster.flatten())
        order[raster.flatten()] = torch.arange(raster.numel(), device=device)
        self.token_of = order.tolist()  # raster index in the slice -> block · L + index
        self.tokens = raster.shape[1]
        # Flat offsets, in the padded convolution input, of the 3×3×3 window of every token.
        padded = (t + 2, h + 2, w + 2)
        offsets = torch.arange(math.prod(padded), device=device).view(padded)
        windows = offsets.unfold(0, 3, 1).unfold(1, 3, 1).unfold(2, 3, 1).flatten(3)
        self.windows = to_blocks(windows[None], block)  # (blocks, L, 27)
        self.positional = to_blocks(decoder.positional_encoding(t, h, w)[None], block)
        self.conv_weight = decoder.causal_conv.masked_weight().flatten(1).T  # (DE · 27, D)
        blocks = self.windows.shape[0]
        self.caches = [layer.attention.new_cache(batch, blocks) for layer in decoder.layers]
        self.embedded = self.context = torch.empty(0)

    def start(self, slice_codes: Tensor, z: Tensor, primed_frames: int) -> None:
        """Begin a slice: codes (B, NC, t, h, w) whose first `primed_frames` frames are given,
        and its encoder output z (B, D, t, h, w). Computes the given frames' tokens."""
        embedded = self.decoder.embed(slice_codes).permute(0, 4, 1, 2, 3)
        self.embedded = F.pad(embedded, CausalConv3d.padding)
        context = self.decoder.context_projection(z.permute(0, 2, 3, 4, 1))
        self.context = to_blocks(context, self.block).view(z.shape[0], *self.positional.shape)
        primed = (self.frame < primed_frames).sum(dim=1).tolist()
        for block, count in enumerate(primed):  # a prefix of every block's raster order
            if count:
                self.advance(block, 0, count)

    def advance(self, block: int, start: int, stop: int) -> Tensor:
        """Decoder output y (B, n, D) of tokens start … stop − 1 of `block`; caches them."""
        windows = self.embedded.flatten(2)[:, :, self.windows[block, start:stop]]
        x = windows.transpose(1, 2).flatten(2) @ self.conv_weight + self.decoder.causal_conv.bias
        x = x + self.positional[block, start:stop]
        x = x + self.context[:, block, start:stop]
        for layer, cache in zip(self.decoder.layers, self.caches, strict=True):
            x = layer.step(x, cache, block, start)
        return x

    def decode(self, t: int, h: int, w: int) -> Tensor:
        """Decoder output y (B, D) at slice position (t, h, w)."""
        _, height, width = self.shape
        block, token = divmod(self.token_of[(t * height + h) * width + w], self.tokens)
        return self.advance(block, token, token + 1)[:, 0]

    def write(self, t: int, h: int, w: int, codes: Tensor) -> None:
        """Make the codes (B, NC) at slice position (t, h, w) visible to later positions."""
        self.embedded[:, :, t + 2, h + 2, w + 1] = self.decoder.embed(codes)


@torch.no_grad()
def sample_codes_fast(
    model: VideoTransformer,
    prime_video: Tensor,
    n_prime: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """`lvt.sampling.sample_codes` with incremental decoding: same arguments, same draws."""
    config = model.config
    video = prime_video.clone()
    plan = sampling_plan(config, video.shape[2:], n_prime)
    total, done = sum(len(positions) for _, _, positions in plan), 0
    decoder = None
    for index, abc, positions in plan:
        codes = take_slice(video, abc, config.stride).clone()
        if decoder is None:
            decoder = IncrementalDecoder(model.decoder, video.shape[0], codes.shape[2:],
                                         config.decoder_block)
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
