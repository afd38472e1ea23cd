"""Latent Video Transformer over VQ-VAE code videos.

A code video (B, NC, T, H, W) is cut into subscale slices (a, b, c): the positions with
t ≡ a (mod st), h ≡ b (mod sh), w ≡ c (mod sw). Slices are generated one after another in
index order. For the current slice, the ContextEncoder reads the already generated slices
(everything else is padding, −1) and the SliceDecoder, conditioned on the encoder output by
addition, predicts the slice autoregressively in raster order; the ChannelPredictor produces
the NC codes of a position one codebook after another.

Layouts: codes (B, NC, t, h, w) int64; hidden states (B, D, t, h, w); logits (B, NV, t, h, w).

The module holds the model only, from the smallest part up: config, subscale slicing, the
embeddings, block-local attention, the layers, encoder, decoder and channel predictor, the model,
its loss. Beside it: the attention kernel with its CPU backward (lvt.models.attention_kernel) and
the decoder's incremental form for sampling (lvt.models.incremental); training batches are built
by the training task (lvt.training.transformer).

References:
1) the paper: Rakhimov et al., "Latent Video Transformer", arXiv 2006.10704;
2) the model it adapts to codes (subscale slices, block-local attention, an encoder and a
   decoder per slice): Weissenborn et al., "Scaling Autoregressive Video Models", arXiv 1906.02634;
3) the authors' code at commit 0899c21, which this module reproduces to 1e-5
   (tests/test_original_fixtures.py); paths below are in it:
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/autoregressive/videotransformer.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/autoregressive/vt_attention.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/autoregressive/vt_utils.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/meta_arch/vt.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/data/dataset_mapper.py
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lvt.models.attention_kernel import biased_attention

PAD = -1  # code value of positions the encoder must not see
IGNORE_INDEX = -100  # target value of positions excluded from the loss

Abc = tuple[int, int, int]


@dataclass(frozen=True)
class TransformerConfig:
    """The model's sizes. No defaults: the paper's values are the configuration schema's
    (`transformer.model`; the codebooks are the VQ-VAE's), built by lvt.config.model_configs."""

    codebooks: int  # NC
    codebook_size: int  # NV
    kernel: tuple[int, int, int]  # context embedding kernel (kt, kh, kw)
    stride: tuple[int, int, int]  # subscale factors; number of slices = product
    embedding_dim: int  # DE
    model_dim: int  # D
    head_dim: int  # DA
    heads: int
    encoder_layers: int
    decoder_layers: int
    encoder_block: tuple[int, int, int]
    decoder_block: tuple[int, int, int]

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "encoder_block", "decoder_block"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 1:
                raise ValueError(f"{name} must be three positive integers, got {value}")
            object.__setattr__(self, name, value)

    @property
    def num_slices(self) -> int:
        return math.prod(self.stride)


# --------------------------------------------------------------------------------------------
# Subscale slicing


def slice_index(abc: Sequence[int], stride: Sequence[int]) -> int:
    """Index of slice (a, b, c) in generation order: a·sh·sw + b·sw + c."""
    a, b, c = abc
    _, sh, sw = stride
    return (a * sh + b) * sw + c


def slice_abc(index: int, stride: Sequence[int]) -> Abc:
    """Inverse of `slice_index`."""
    _, sh, sw = stride
    return index // (sh * sw), index // sw % sh, index % sw


def take_slice(video: Tensor, abc: Sequence[int], stride: Sequence[int]) -> Tensor:
    """(B, NC, T, H, W) -> slice (B, NC, T/st, H/sh, W/sw)."""
    (a, b, c), (st, sh, sw) = abc, stride
    return video[:, :, a::st, b::sh, c::sw]


def slice_index_grid(
    shape: Sequence[int], stride: Sequence[int], device: torch.device | None = None
) -> Tensor:
    """(T, H, W) tensor holding the slice index of every position of a video."""
    t, h, w = (torch.arange(n, device=device) % s for n, s in zip(shape, stride, strict=True))
    _, sh, sw = stride
    return (t[:, None, None] * sh + h[None, :, None]) * sw + w[None, None, :]


def slice_context(video: Tensor, abc: Sequence[int], config: TransformerConfig) -> Tensor:
    """Encoder input for slice `abc`: (B, NC, T, H, W) -> (B, NC, Tc, Hc, Wc).

    Positions in slices with index ≥ the current one become −1; then every axis is cropped or
    padded with −1 so that the strided context convolution yields exactly one output per slice
    position, its first window centred on (a, b, c).
    """
    shape = video.shape[2:]
    for n, s in zip(shape, config.stride, strict=True):
        if n % s:
            raise ValueError(f"video shape {tuple(shape)} not divisible by stride {config.stride}")
    current = slice_index(abc, config.stride)
    masked = video.masked_fill(slice_index_grid(shape, config.stride, video.device) >= current, PAD)
    padding: list[int] = []
    for n, s, k, o in zip(shape, config.stride, config.kernel, abc, strict=True):
        last = o + (n // s - 1) * s
        padding = [k // 2 - o, k // 2 - (n - 1 - last), *padding]  # F.pad lists the last axis first
    return F.pad(masked, padding, value=PAD)  # negative amounts crop


# --------------------------------------------------------------------------------------------
# Embeddings, causal convolution, positional encoding


class ContextEmbedding(nn.Module):
    """Strided 3-D convolution over the one-hot context, computed as a sum of embeddings.

    The weight has the layout of a Conv3d over NC·NV one-hot channels (channel k·NV + v for
    code v of codebook k). Every window tap contributes the weight column of the code it sees,
    so the 2,048-channel one-hot tensor is never built; padding (−1) contributes nothing.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.kernel = config.kernel
        self.stride = config.stride
        self.codebook_size = config.codebook_size
        channels = config.codebooks * config.codebook_size
        self.weight = nn.Parameter(torch.empty(config.embedding_dim, channels, *config.kernel))
        self.bias = nn.Parameter(torch.zeros(config.embedding_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, context: Tensor) -> Tensor:
        """(B, NC, Tc, Hc, Wc) int64 -> (B, t, h, w, DE)."""
        (kt, kh, kw), (st, sh, sw) = self.kernel, self.stride
        windows = context.unfold(2, kt, st).unfold(3, kh, sh).unfold(4, kw, sw)
        b, _, t, h, w = windows.shape[:5]
        windows = windows.permute(0, 2, 3, 4, 5, 6, 7, 1).reshape(b * t * h * w, -1)
        rows = self.weight.permute(2, 3, 4, 1, 0).flatten(0, 3)  # row tap·NC·NV + k·NV + v
        pad_row = rows.shape[0]
        rows = F.pad(rows, (0, 0, 0, 1))
        offsets = torch.arange(windows.shape[1], device=context.device) * self.codebook_size
        index = torch.where(windows >= 0, windows + offsets, pad_row)
        out = F.embedding_bag(index, rows, mode="sum", padding_idx=pad_row) + self.bias
        return out.view(b, t, h, w, -1)


class CausalConv3d(nn.Module):
    """3×3×3 convolution whose output at p sees only positions before p in raster order.

    Input padding: 2 frames in front, 2 rows on top, 1 column left and right. The taps
    [:, :, 2, 2, 1:] (current position and the one to its right) are masked in every forward,
    so stored values there never matter.
    """

    padding = (1, 1, 2, 0, 2, 0)  # F.pad amounts (w, h, t), so output p reads window p of the pad

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight)
        mask = torch.ones(3, 3, 3)
        mask[2, 2, 1:] = 0
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> Tensor:
        """The weight with the taps at and right of the current position zeroed."""
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, t, h, w) -> (B, C_out, t, h, w)."""
        return F.conv3d(F.pad(x, self.padding), self.masked_weight(), self.bias)


class PositionalEncoding3d(nn.Module):
    """Sinusoidal encoding of (t, h, w) inside a slice.

    With n = D // 6, axis i ∈ (t, h, w) uses channels [2in, 2in + n) for sin(pos · inv) and
    [2in + n, 2in + 2n) for cos(pos · inv), inv[j] = exp(−j · ln(10⁴) / n); the last D − 6n
    channels stay zero.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        n = dim // 6
        inv_timescales = torch.exp(torch.arange(n, dtype=torch.float32) * (-math.log(1e4) / n))
        self.register_buffer("inv_timescales", inv_timescales, persistent=False)

    def forward(self, t: int, h: int, w: int) -> Tensor:
        """Encoding of a (t, h, w) grid: (t, h, w, D)."""
        grids = torch.meshgrid(
            *(torch.arange(n, device=self.inv_timescales.device) for n in (t, h, w)), indexing="ij"
        )
        parts = []
        for grid in grids:
            angles = grid.unsqueeze(-1).float() * self.inv_timescales
            parts += [angles.sin(), angles.cos()]
        encoding = torch.cat(parts, dim=-1)
        return F.pad(encoding, (0, self.dim - encoding.shape[-1]))


# --------------------------------------------------------------------------------------------
# Block-local attention


def relative_index(n: int) -> Tensor:
    """Bias-table index of every (query, key) pair along one axis of size n: (n, n).

    Index = coordinate(query) − coordinate(key) + n − 1.
    """
    coords = torch.arange(n)
    return coords[:, None] - coords[None, :] + n - 1


def to_blocks(x: Tensor, block: Sequence[int]) -> Tensor:
    """(B, T, H, W, D) -> (B · number of blocks, tokens per block, D), tokens in raster order."""
    b, t, h, w, d = x.shape
    tb, hb, wb = block
    if t % tb or h % hb or w % wb:
        raise ValueError(f"grid {(t, h, w)} is not tiled by attention blocks {tuple(block)}")
    x = x.view(b, t // tb, tb, h // hb, hb, w // wb, wb, d).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, tb * hb * wb, d)


def from_blocks(x: Tensor, block: Sequence[int], shape: Sequence[int]) -> Tensor:
    """Inverse of `to_blocks` for an original shape (B, T, H, W, D)."""
    b, t, h, w, d = shape
    tb, hb, wb = block
    x = x.view(b, t // tb, h // hb, w // wb, tb, hb, wb, d).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, t, h, w, d)


class BlockLocalAttention(nn.Module):
    """Pre-LN multi-head self-attention inside non-overlapping blocks of the (t, h, w) grid.

    Scores get a learned relative position bias per head, the sum of one table per axis;
    `causal` hides keys after the query (raster order inside the block).
    """

    def __init__(self, config: TransformerConfig, block: Sequence[int], causal: bool) -> None:
        super().__init__()
        d, da, heads = config.model_dim, config.head_dim, config.heads
        self.block = tuple(block)
        self.norm = nn.LayerNorm(d)
        self.query = nn.Parameter(torch.empty(heads, d, da))
        self.key = nn.Parameter(torch.empty(heads, d, da))
        self.value = nn.Parameter(torch.empty(heads, d, da))
        for w in (self.query, self.key, self.value):
            nn.init.xavier_normal_(w)  # on the 3-D tensor, as the original (≈10× below per head)
        self.output = nn.Linear(heads * da, d, bias=False)
        self.bias_t, self.bias_h, self.bias_w = (
            nn.Parameter(torch.zeros(heads, 2 * n - 1)) for n in self.block
        )
        for axis, n in zip("thw", self.block, strict=True):
            self.register_buffer(f"index_{axis}", relative_index(n), persistent=False)
        tokens = math.prod(self.block)
        hidden = torch.full((tokens, tokens), float("-inf")).triu(1) if causal else None
        self.register_buffer("causal_mask", hidden, persistent=False)

    def attention_bias(self) -> Tensor:
        """Additive score bias (1, heads, L, L): relative positions, −inf on hidden keys.

        The mask is 4-D because scaled_dot_product_attention only uses its fused CPU kernel
        for 4-D masks.
        """
        heads, tokens = self.bias_t.shape[0], math.prod(self.block)
        bias_t = self.bias_t[:, self.index_t][:, :, None, None, :, None, None]
        bias_h = self.bias_h[:, self.index_h][:, None, :, None, None, :, None]
        bias_w = self.bias_w[:, self.index_w][:, None, None, :, None, None, :]
        bias = (bias_t + bias_h + bias_w).reshape(1, heads, tokens, tokens)
        return bias if self.causal_mask is None else bias + self.causal_mask

    def projection(self) -> Tensor:
        """(D, 3 · heads · DA): query, key and value weights side by side, head-major, so that
        one matrix product computes all three."""
        return torch.cat([self.query, self.key, self.value]).permute(1, 0, 2).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, t, h, w, D) -> attention output (B, t, h, w, D), without the residual."""
        tokens = to_blocks(self.norm(x), self.block)  # (N, L, D)
        n, length, _ = tokens.shape
        qkv = (tokens @ self.projection()).view(n, length, 3, self.bias_t.shape[0], -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, L, DA)
        heads = biased_attention(q, k, v, self.attention_bias())
        merged = heads.transpose(1, 2).flatten(2)  # head-major channels h·DA + j
        return from_blocks(self.output(merged), self.block, x.shape)


# --------------------------------------------------------------------------------------------
# Layers


class FeedForward(nn.Module):
    """Pre-LN two-layer MLP of width D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(self.norm(x))))


class TransformerLayer(nn.Module):
    """Block-local attention then feed-forward, each with a residual connection."""

    def __init__(self, config: TransformerConfig, block: Sequence[int], causal: bool) -> None:
        super().__init__()
        self.attention = BlockLocalAttention(config, block, causal)
        self.feed_forward = FeedForward(config.model_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(x)
        return x + self.feed_forward(x)


# --------------------------------------------------------------------------------------------
# Encoder: the already generated slices


class ContextEncoder(nn.Module):
    """Context embedding + slice embedding -> projection to D -> unmasked attention layers.

    No absolute positional encoding: position enters only through the relative biases.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.context_embedding = ContextEmbedding(config)
        self.slice_embedding = nn.Embedding(config.num_slices, config.embedding_dim)
        self.projection = nn.Linear(config.embedding_dim, config.model_dim, bias=False)
        self.layers = nn.ModuleList(
            TransformerLayer(config, config.encoder_block, causal=False)
            for _ in range(config.encoder_layers)
        )

    def forward(self, context: Tensor, slice_idx: Tensor) -> Tensor:
        """context (B, NC, Tc, Hc, Wc), slice_idx (B,) -> z (B, D, t, h, w)."""
        x = self.context_embedding(context) + self.slice_embedding(slice_idx)[:, None, None, None]
        x = self.projection(x)
        for layer in self.layers:
            x = layer(x)
        return x.permute(0, 4, 1, 2, 3)


# --------------------------------------------------------------------------------------------
# Decoder: the current slice


class SliceDecoder(nn.Module):
    """Summed code embeddings -> causal conv -> + positional encoding + projected z -> masked
    attention layers. Conditioning on the encoder is by addition (no cross-attention)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.code_embeddings = nn.ModuleList(
            nn.Embedding(config.codebook_size, config.embedding_dim)
            for _ in range(config.codebooks)
        )
        self.causal_conv = CausalConv3d(config.embedding_dim, config.model_dim)
        self.positional_encoding = PositionalEncoding3d(config.model_dim)
        self.context_projection = nn.Linear(config.model_dim, config.model_dim, bias=False)
        self.layers = nn.ModuleList(
            TransformerLayer(config, config.decoder_block, causal=True)
            for _ in range(config.decoder_layers)
        )

    def embed(self, codes: Tensor) -> Tensor:
        """Sum of the per-codebook embeddings: codes (B, NC, …) -> (B, …, DE)."""
        return sum(emb(codes[:, k]) for k, emb in enumerate(self.code_embeddings))

    def forward(self, slice_codes: Tensor, z: Tensor) -> Tensor:
        """slice_codes (B, NC, t, h, w), z (B, D, t, h, w) -> y (B, D, t, h, w)."""
        embedded = self.embed(slice_codes)
        x = self.causal_conv(embedded.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        x = x + self.positional_encoding(*x.shape[1:4])
        x = x + self.context_projection(z.permute(0, 2, 3, 4, 1))
        for layer in self.layers:
            x = layer(x)
        return x.permute(0, 4, 1, 2, 3)


# --------------------------------------------------------------------------------------------
# Channel predictor: the codes of a position


class ChannelPredictor(nn.Module):
    """Per-position output head, autoregressive over codebooks.

    h = LayerNorm(y); logits_k = P_k(relu(U_k([h, onehot(c_0), …, onehot(c_{k−1})]))).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d, nv = config.model_dim, config.codebook_size
        self.codebook_size = nv
        self.norm = nn.LayerNorm(d)
        self.hidden = nn.ModuleList(nn.Linear(d + k * nv, d) for k in range(config.codebooks))
        self.output = nn.ModuleList(nn.Linear(d, nv) for _ in range(config.codebooks))

    def codebook_logits(self, h: Tensor, previous: Tensor, k: int) -> Tensor:
        """Logits of codebook k: h = norm(y) (N, D), previous = codes c_<k (N, k) -> (N, NV).

        U_k's one-hot inputs select one weight column per previous codebook, so their product
        is a sum of looked-up columns; the one-hot vectors are never built.
        """
        hidden = self.hidden[k]
        d = h.shape[1]
        u = F.linear(h, hidden.weight[:, :d], hidden.bias)
        if k:
            offsets = torch.arange(k, device=previous.device) * self.codebook_size
            u = u + F.embedding_bag(previous + offsets, hidden.weight[:, d:].T, mode="sum")
        return self.output[k](F.relu(u))

    def forward(self, y: Tensor, codes: Tensor) -> list[Tensor]:
        """Teacher forcing: y (N, D), codes (N, NC) -> NC logits (N, NV)."""
        h = self.norm(y)
        return [self.codebook_logits(h, codes[:, :k], k) for k in range(len(self.output))]


# --------------------------------------------------------------------------------------------
# The model


class LatentVideoTransformer(nn.Module):
    """ContextEncoder + SliceDecoder + ChannelPredictor."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ContextEncoder(config)
        self.decoder = SliceDecoder(config)
        self.predictor = ChannelPredictor(config)
        # Original init (`init_weights` in vidgen/modeling/meta_arch/vt.py): xavier-uniform
        # weights and zero biases for every linear layer;
        # the custom modules initialise their own tensors, embeddings keep N(0, 1).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def encode(self, context: Tensor, slice_idx: Tensor) -> Tensor:
        """context (B, NC, Tc, Hc, Wc), slice_idx (B,) -> z (B, D, t, h, w)."""
        return self.encoder(context, slice_idx)

    def decode(self, slice_codes: Tensor, z: Tensor) -> Tensor:
        """slice_codes (B, NC, t, h, w), z (B, D, t, h, w) -> y (B, D, t, h, w)."""
        return self.decoder(slice_codes, z)

    def predict(self, y: Tensor, slice_codes: Tensor) -> list[Tensor]:
        """Teacher-forced logits: NC tensors (B, NV, t, h, w)."""
        b, d, t, h, w = y.shape
        flat_y = y.permute(0, 2, 3, 4, 1).reshape(-1, d)
        flat_codes = slice_codes.permute(0, 2, 3, 4, 1).reshape(-1, slice_codes.shape[1])
        return [
            logits.view(b, t, h, w, -1).permute(0, 4, 1, 2, 3)
            for logits in self.predictor(flat_y, flat_codes)
        ]

    def forward(self, context: Tensor, slice_codes: Tensor, slice_idx: Tensor) -> list[Tensor]:
        """Teacher-forced logits of a slice given its context: NC tensors (B, NV, t, h, w)."""
        return self.predict(self.decode(slice_codes, self.encode(context, slice_idx)), slice_codes)


def whole_video_logits(model: LatentVideoTransformer, video: Tensor) -> Tensor:
    """Teacher-forced logits of every position, each slice run once with its own context
    (`calculate_logits_for_entire_video` in vidgen/modeling/meta_arch/vt.py).

    video (B, NC, T, H, W) -> logits (B, NC, NV, T, H, W).
    """
    config = model.config
    b, nc, t, h, w = video.shape
    logits = torch.empty(b, nc, config.codebook_size, t, h, w, device=video.device)
    for index in range(config.num_slices):
        abc = slice_abc(index, config.stride)
        slice_idx = torch.full((b,), index, dtype=torch.long, device=video.device)
        codes = take_slice(video, abc, config.stride)
        slice_logits = model(slice_context(video, abc, config), codes, slice_idx)
        # Channel k·NV + v of the flattened view is (codebook k, value v).
        take_slice(logits.flatten(1, 2), abc, config.stride).copy_(torch.cat(slice_logits, dim=1))
    return logits


# --------------------------------------------------------------------------------------------
# Loss


def slice_loss(logits: Sequence[Tensor], target: Tensor, ignore_mask: Tensor) -> Tensor:
    """Cross entropy (nats) per codebook, averaged over the batch's non-ignored positions,
    then averaged over codebooks (`compute_supervised_loss` in vidgen/modeling/meta_arch/vt.py).
    target (B, NC, t, h, w); ignore_mask (B, 1, t, h, w).

    The logits are taken as rows (positions, NV): `LatentVideoTransformer.predict` computes them
    in that layout, so the view costs nothing and the softmax runs over contiguous memory.
    """
    target = target.masked_fill(ignore_mask, IGNORE_INDEX)
    losses = [
        F.cross_entropy(lg.movedim(1, -1).reshape(-1, lg.shape[1]), target[:, k].reshape(-1),
                        ignore_index=IGNORE_INDEX)
        for k, lg in enumerate(logits)
    ]
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------
# Size and optimiser


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def optimizer(
    model: nn.Module, *, lr: float, alpha: float, momentum: float, eps: float
) -> torch.optim.RMSprop:
    """RMSprop as the original (constant lr, no weight decay; configs/vt/DSFVT.yaml); the paper's
    values are the configuration schema's `transformer.train` defaults."""
    return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=alpha, momentum=momentum, eps=eps)
