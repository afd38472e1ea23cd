"""The SliceDecoder computed one position at a time, for sampling.

The decoder's output at a position depends only on earlier positions of its slice, so instead of
recomputing the whole slice for every sampled position, each position is computed once: the
causal convolution from the window of already embedded codes around it, the positional encoding
and projected encoder output taken at it, and every masked attention layer with a cache of the
keys and values of the block's earlier tokens. The outputs equal `SliceDecoder.forward`'s up to
the summation order of the floating-point work (tests/test_sampling.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lvt.models.transformer import BlockLocalAttention, CausalConv3d, SliceDecoder, to_blocks


class CachedAttention:
    """A causal BlockLocalAttention computed a few tokens at a time, keeping the keys and values
    of the tokens computed so far in every block."""

    def __init__(self, attention: BlockLocalAttention, batch: int, blocks: int) -> None:
        if attention.causal_mask is None:
            raise ValueError("incremental attention needs a causal layer")
        heads, _, da = attention.query.shape
        shape = (blocks, batch, heads, math.prod(attention.block), da)
        self.attention = attention
        self.projection = attention.projection()  # (D, 3 · heads · DA)
        self.bias = attention.attention_bias()  # (1, heads, L, L), with the causal mask
        self.keys = attention.query.new_zeros(shape)  # (blocks, B, heads, L, DA)
        self.values = attention.query.new_zeros(shape)

    def step(self, x: Tensor, block: int, start: int) -> Tensor:
        """Output for tokens start, start + 1, … of one block: x (B, n, D) -> (B, n, D).

        Stores their keys and values; the block's earlier tokens must be in the cache already
        (later entries are never read).
        """
        batch, n, _ = x.shape
        stop = start + n
        heads = self.keys.shape[2]
        qkv = self.attention.norm(x) @ self.projection
        qkv = qkv.view(batch, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        self.keys[block, :, :, start:stop] = qkv[1]
        self.values[block, :, :, start:stop] = qkv[2]
        keys, values = self.keys[block, :, :, :stop], self.values[block, :, :, :stop]
        # Written out: the fused SDPA kernel is slow for a handful of queries on CPU.
        scores = qkv[0] @ keys.transpose(2, 3) / math.sqrt(qkv.shape[-1])
        weights = torch.softmax(scores + self.bias[:, :, start:stop, :stop], dim=-1)
        return self.attention.output((weights @ values).transpose(1, 2).flatten(2))


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
        self.attention = [
            CachedAttention(layer.attention, batch, blocks) for layer in decoder.layers
        ]
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
        """Decoder output y (B, n, D) of tokens start … stop − 1 of `block`; caches them.

        Each layer as `TransformerLayer.forward`: attention, then feed-forward, each residual.
        """
        windows = self.embedded.flatten(2)[:, :, self.windows[block, start:stop]]
        x = windows.transpose(1, 2).flatten(2) @ self.conv_weight + self.decoder.causal_conv.bias
        x = x + self.positional[block, start:stop]
        x = x + self.context[:, block, start:stop]
        for layer, attention in zip(self.decoder.layers, self.attention, strict=True):
            x = x + attention.step(x, block, start)
            x = x + layer.feed_forward(x)
        return x

    def decode(self, t: int, h: int, w: int) -> Tensor:
        """Decoder output y (B, D) at slice position (t, h, w)."""
        _, height, width = self.shape
        block, token = divmod(self.token_of[(t * height + h) * width + w], self.tokens)
        return self.advance(block, token, token + 1)[:, 0]

    def write(self, t: int, h: int, w: int, codes: Tensor) -> None:
        """Make the codes (B, NC) at slice position (t, h, w) visible to later positions."""
        self.embedded[:, :, t + 2, h + 2, w + 1] = self.decoder.embed(codes)
