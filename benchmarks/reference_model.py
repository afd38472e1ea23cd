"""Straightforward reference-style models for the training benchmark (benchmark-only code).

The same architectures as `lvt.models`, written the way the authors wrote them (rakhimovv/lvt at
commit 0899c21: vidgen/modeling/autoregressive/ and vidgen/modeling/{encoder,generator,vq}/):
channels-first tensors, the encoder's context as a 2,048-channel one-hot tensor
(4 codebooks × 512) into a Conv3d, the channel predictor's one-hot inputs concatenated, per-head
projections, explicit softmax attention over a materialised bias and −1e4 mask, a per-codebook
quantiser with one-hot assignment matrices; fp32 and eager. Parameter and buffer names follow the
authors' checkpoints, so `lvt.original` turns a reference model's state dict into our model with
the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lvt.models.transformer import TransformerConfig
from lvt.models.vqvae import VQVAEConfig

# --------------------------------------------------------------------------------------------
# Latent Video Transformer


def one_hot_channels(codes: Tensor, size: int) -> Tensor:
    """(B, NC, …) codes, −1 = padding -> (B, NC·size, …) float one-hot, padding all zero."""
    onehot = F.one_hot(codes.clamp(min=0), size) * (codes >= 0).unsqueeze(-1)
    onehot = onehot.movedim(-1, 2)  # (B, NC, size, …)
    return onehot.flatten(1, 2).float()


class ReferencePositionalEncoding(nn.Module):
    """Sinusoidal (t, h, w) encoding: per axis n = dim // 6 sines then n cosines; zero tail."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        n = dim // 6
        self.register_buffer(
            "inv_timescales", torch.exp(torch.arange(n).float() * (-math.log(1e4) / n))
        )

    def forward(self, t: int, h: int, w: int) -> Tensor:
        """(1, dim, t, h, w)."""
        parts = []
        for axis, size in enumerate((t, h, w)):
            angles = torch.arange(size).float()[:, None] * self.inv_timescales[None]
            signal = torch.cat([angles.sin(), angles.cos()], dim=1)  # (size, 2n)
            shape = [1, 1, 1, signal.shape[1]]
            shape[axis] = size
            parts.append(signal.view(shape).expand(t, h, w, -1))
        encoding = torch.cat(parts, dim=-1)
        encoding = F.pad(encoding, (0, self.dim - encoding.shape[-1]))
        return encoding.permute(3, 0, 1, 2).unsqueeze(0)


class ReferenceMultiHeadAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d, da, heads = config.model_dim, config.head_dim, config.heads
        self.layer_norm = nn.LayerNorm(d)
        self.w_q = nn.Parameter(torch.empty(heads, d, da))
        self.w_k = nn.Parameter(torch.empty(heads, d, da))
        self.w_v = nn.Parameter(torch.empty(heads, d, da))
        for weight in (self.w_q, self.w_k, self.w_v):
            nn.init.xavier_normal_(weight)
        self.proj = nn.Linear(heads * da, d, bias=False)

    def forward(self, x: Tensor, bias: Tensor, mask: Tensor | None) -> Tensor:
        """x (N, L, D), bias (heads, L, L), mask (1, 1, L, L) of 1 = hidden -> (N, L, D)."""
        x = self.layer_norm(x)
        q = torch.einsum("nld,hde->nhle", x, self.w_q)
        k = torch.einsum("nld,hde->nhle", x, self.w_k)
        v = torch.einsum("nld,hde->nhle", x, self.w_v)
        logits = q @ k.transpose(2, 3) / math.sqrt(q.shape[-1]) + bias.unsqueeze(0)
        if mask is not None:
            logits = logits.masked_fill(mask == 1, -1e4)
        weights = torch.softmax(logits, dim=-1)
        out = (weights @ v).permute(0, 2, 1, 3).flatten(2)
        return self.proj(out)


class ReferenceAttentionLayer(nn.Module):
    """Block-local attention with relative position banks, then the feed-forward block."""

    def __init__(self, config: TransformerConfig, block: Sequence[int], masked: bool) -> None:
        super().__init__()
        self.block = tuple(block)
        heads, tokens = config.heads, math.prod(block)
        self.mha = ReferenceMultiHeadAttention(config)
        self.dt_bank, self.dh_bank, self.dw_bank = (
            nn.Parameter(torch.zeros(heads, 2 * n - 1)) for n in self.block
        )
        coords = torch.stack(
            torch.meshgrid(*(torch.arange(n) for n in self.block), indexing="ij")
        ).flatten(1)  # (3, L)
        offset = torch.tensor(self.block)[:, None, None] - 1
        relative = coords[:, :, None] - coords[:, None, :] + offset
        for name, index in zip(("dt", "dh", "dw"), relative, strict=True):
            self.register_buffer(name, index.flatten())
        if masked:
            mask = torch.ones(tokens, tokens).triu(1).view(1, 1, tokens, tokens)
            self.register_buffer("mask", mask)
        else:
            self.mask = None
        d = config.model_dim
        self.ffn = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, D, t, h, w) -> (B, D, t, h, w)."""
        b, d, t, h, w = x.shape
        tb, hb, wb = self.block
        blocks = x.view(b, d, t // tb, tb, h // hb, hb, w // wb, wb)
        blocks = blocks.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(-1, tb * hb * wb, d)
        tokens = tb * hb * wb
        bias = (self.dt_bank[:, self.dt] + self.dh_bank[:, self.dh] + self.dw_bank[:, self.dw])
        blocks = blocks + self.mha(blocks, bias.view(-1, tokens, tokens), self.mask)
        blocks = blocks + self.ffn(blocks)
        out = blocks.view(b, t // tb, h // hb, w // wb, tb, hb, wb, d)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, d, t, h, w)


class ReferenceEncoder(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.codebook_size = config.codebook_size
        channels = config.codebooks * config.codebook_size
        self.conv = nn.Conv3d(channels, config.embedding_dim, config.kernel, config.stride)
        self.slice_embedding = nn.Embedding(math.prod(config.stride), config.embedding_dim)
        self.linear_projector = nn.Conv3d(config.embedding_dim, config.model_dim, 1, bias=False)
        self.positional_encoder = ReferencePositionalEncoding(config.embedding_dim)  # unused
        self.block_local_attention = nn.ModuleList(
            ReferenceAttentionLayer(config, config.encoder_block, masked=False)
            for _ in range(config.encoder_layers)
        )

    def forward(self, context: Tensor, slice_idx: Tensor) -> Tensor:
        x = self.conv(one_hot_channels(context, self.codebook_size))
        x = self.linear_projector(x + self.slice_embedding(slice_idx)[:, :, None, None, None])
        for layer in self.block_local_attention:
            x = layer(x)
        return x


class ReferenceCausalConv(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.conv = nn.Conv3d(config.embedding_dim, config.model_dim, 3)
        mask = torch.ones(3, 3, 3)
        mask[2, 2, 1:] = 0
        self.register_buffer("kernel_mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv3d(F.pad(x, (1, 1, 2, 0, 2, 0)), self.conv.weight * self.kernel_mask,
                        self.conv.bias)


class ReferenceDecoder(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ch_embedder = nn.ModuleList(
            nn.Embedding(config.codebook_size, config.embedding_dim)
            for _ in range(config.codebooks)
        )
        self.conv = ReferenceCausalConv(config)
        self.positional_encoder = ReferencePositionalEncoding(config.model_dim)
        self.linear_projector = nn.Conv3d(config.model_dim, config.model_dim, 1, bias=False)
        self.block_local_attention = nn.ModuleList(
            ReferenceAttentionLayer(config, config.decoder_block, masked=True)
            for _ in range(config.decoder_layers)
        )

    def forward(self, codes: Tensor, z: Tensor) -> Tensor:
        embedded = sum(emb(codes[:, k]) for k, emb in enumerate(self.ch_embedder))
        x = self.conv(embedded.permute(0, 4, 1, 2, 3))
        x = x + self.positional_encoder(*x.shape[2:]) + self.linear_projector(z)
        for layer in self.block_local_attention:
            x = layer(x)
        return x


class ReferenceChannelPredictor(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d, nv = config.model_dim, config.codebook_size
        self.codebook_size = nv
        self.layer_norm = nn.LayerNorm(d)
        self.U = nn.ModuleList(nn.Linear(d + k * nv, d) for k in range(config.codebooks))
        self.P = nn.ModuleList(nn.Linear(d, nv) for _ in range(config.codebooks))

    def forward(self, y: Tensor, codes: Tensor) -> list[Tensor]:
        """y (B, D, t, h, w), codes (B, NC, t, h, w) -> NC logits (B, NV, t, h, w)."""
        b, d, t, h, w = y.shape
        hidden = self.layer_norm(y.permute(0, 2, 3, 4, 1).reshape(-1, d))
        flat_codes = codes.permute(0, 2, 3, 4, 1).reshape(-1, codes.shape[1])
        onehot = F.one_hot(flat_codes, self.codebook_size).float()  # (N, NC, NV)
        logits = []
        for k, (u, p) in enumerate(zip(self.U, self.P, strict=True)):
            inputs = torch.cat([hidden, onehot[:, :k].flatten(1)], dim=1)
            out = p(F.relu(u(inputs)))
            logits.append(out.view(b, t, h, w, -1).permute(0, 4, 1, 2, 3))
        return logits


class ReferenceVideoTransformer(nn.Module):
    """The authors' netG layout: encoder, decoder, ch_predictor."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.encoder = ReferenceEncoder(config)
        self.decoder = ReferenceDecoder(config)
        self.ch_predictor = ReferenceChannelPredictor(config)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv3d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, context: Tensor, slice_codes: Tensor, slice_idx: Tensor) -> list[Tensor]:
        z = self.encoder(context, slice_idx)
        return self.ch_predictor(self.decoder(slice_codes, z), slice_codes)


# --------------------------------------------------------------------------------------------
# VQ-VAE


class ReferenceResidualBlock(nn.Module):
    """The authors' block: its first ReLU is in place, so the skip carries relu(x)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ReferenceCodebook(nn.Module):
    """One EMA codebook: nearest neighbour by a distance matrix, EMA by a one-hot matrix."""

    def __init__(self, size: int, dim: int, decay: float, eps: float) -> None:
        super().__init__()
        self.decay, self.eps = decay, eps
        self.embedding = nn.Embedding(size, dim)
        self.embedding.weight.data.uniform_(-1.0 / size, 1.0 / size)
        self.embedding.weight.requires_grad_(False)
        self.register_buffer("running_size", torch.zeros(size))
        self.register_buffer("running_sum", self.embedding.weight.data.clone())

    def assign(self, z: Tensor) -> Tensor:
        """z (N, dim) -> codes (N,)."""
        weight = self.embedding.weight
        distances = (z**2).sum(1, keepdim=True) + (weight**2).sum(1) - 2 * z @ weight.t()
        return distances.argmin(1)

    @torch.no_grad()
    def update(self, z: Tensor, codes: Tensor) -> None:
        encodings = F.one_hot(codes, self.embedding.num_embeddings).float()
        self.running_size.mul_(self.decay).add_(encodings.sum(0), alpha=1 - self.decay)
        self.running_sum.mul_(self.decay).add_(encodings.t() @ z, alpha=1 - self.decay)
        n = self.running_size.sum()
        size = (self.running_size + self.eps) / (n + len(self.running_size) * self.eps) * n
        self.embedding.weight.copy_(self.running_sum / size[:, None])


class ReferenceVQVAE(nn.Module):
    """netE / netG as `layers` Sequentials, netC as `ve` codebooks (the authors' layout)."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        c, r, n = config.channels, config.residual_channels, config.residual_blocks
        self.config = config
        self.net_e = nn.Module()
        self.net_e.layers = nn.Sequential(
            nn.Conv2d(3, c // 2, 4, 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), *(ReferenceResidualBlock(c, r) for _ in range(n)),
        )
        self.net_g = nn.Module()
        self.net_g.layers = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), *(ReferenceResidualBlock(c, r) for _ in range(n)),
            nn.ReLU(), nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c // 2, 3, 4, 2, 1), nn.Tanh(),
        )
        self.net_c = nn.Module()
        dim = c // config.codebooks
        self.net_c.ve = nn.ModuleList(
            ReferenceCodebook(config.codebook_size, dim, config.ema_decay, config.ema_eps)
            for _ in range(config.codebooks)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images01: Tensor) -> Tensor:
        """Training loss of a batch of images in [0, 1]; updates the codebooks."""
        x = (images01 - 0.5) / 0.5
        z_e = self.net_e.layers(x)
        b, c, h, w = z_e.shape
        chunks = z_e.permute(0, 2, 3, 1).reshape(-1, c).chunk(len(self.net_c.ve), dim=1)
        quantized, committed = [], []
        for codebook, chunk in zip(self.net_c.ve, chunks, strict=True):
            codes = codebook.assign(chunk.detach())
            quantized.append(codebook.embedding(codes))
            codebook.update(chunk.detach(), codes)
            committed.append(codebook.embedding(codes))
        z_q = torch.cat(quantized, 1).view(b, h, w, c).permute(0, 3, 1, 2)
        z_q_bar = torch.cat(committed, 1).view(b, h, w, c).permute(0, 3, 1, 2)
        reconstruction = self.net_g.layers(z_e + (z_q - z_e).detach())
        commitment = self.config.commitment_weight * F.mse_loss(z_e, z_q_bar)
        return F.mse_loss(reconstruction, x) + commitment

    def original_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """netE, netG and netC state dicts as the authors' checkpoints hold them."""
        return (self.net_e.state_dict(), self.net_g.state_dict(), self.net_c.state_dict())
