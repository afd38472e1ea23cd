"""Per-frame VQ-VAE with a product quantiser and EMA codebooks.

Images go in as floats in [0, 1] and are normalised to [-1, 1] inside the model. A frame of
H×W pixels becomes `codebooks` integer code maps of size H/4 × W/4.

References:
1) the paper: Rakhimov et al., "Latent Video Transformer", arXiv 2006.10704;
2) VQ-VAE with EMA codebooks: van den Oord et al., "Neural Discrete Representation Learning",
   arXiv 1711.00937;
3) the authors' code at commit 0899c21, which this module reproduces to 1e-5
   (tests/test_original_fixtures.py); paths below are in it:
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/meta_arch/vqvae.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/encoder/resencoder.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/generator/resdecoder.py
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/vq/vq_embedding.py
https://github.com/rakhimovv/lvt/blob/0899c21/configs/vqvae/Base-VQVAE.yaml
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class VQVAEConfig:
    """The model's sizes and codebook rule. No defaults: the paper's values are the configuration
    schema's (`vqvae.model`), built by lvt.config.model_configs."""

    channels: int  # encoder output channels = total codebook vector dimension (NF)
    residual_channels: int  # hidden width of the residual blocks (RES_CHANNELS)
    residual_blocks: int  # N_LAYERS: 2 for BAIR, 4 for Kinetics; same in encoder and decoder
    codebooks: int  # product quantiser: channels split into `codebooks` contiguous chunks
    codebook_size: int
    ema_decay: float
    ema_eps: float
    commitment_weight: float
    dead_code_threshold: float  # > 0: restart codes whose EMA count falls below it

    def __post_init__(self) -> None:
        if self.channels % 2 or self.channels % self.codebooks:
            raise ValueError(
                f"channels ({self.channels}) must be even and divisible by codebooks "
                f"({self.codebooks})"
            )


@dataclass
class VQVAEOutput:
    """Result of the training-loss forward."""

    reconstruction: Tensor  # decoder output x_tilde in [-1, 1] (tanh, not clamped)
    codes: Tensor  # (B, codebooks, H/4, W/4) int64
    loss_reconstruction: Tensor
    loss_commitment: Tensor
    loss: Tensor
    perplexity: Tensor  # (codebooks,): exp(entropy of code usage in the (global) batch)


def normalize(images01: Tensor) -> Tensor:
    """Map images from [0, 1] to the model's input range [-1, 1]."""
    return (images01 - 0.5) / 0.5


class ResidualBlock(nn.Module):
    """relu(x) + conv1x1(relu(conv3x3(relu(x)))).

    The skip path carries relu(x), not x: the original (vidgen/modeling/encoder/resencoder.py)
    applies an in-place ReLU to the block input, and its checkpoints are only reproduced with
    this form.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv1x1 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return x + self.conv1x1(F.relu(self.conv3x3(x)))


class Encoder(nn.Module):
    """Two stride-2 4×4 convs, a 3×3 conv and residual blocks: 4× spatial downsampling."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        c = config.channels
        self.down1 = nn.Conv2d(3, c // 2, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(c // 2, c, 4, stride=2, padding=1)
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResidualBlock(c, config.residual_channels) for _ in range(config.residual_blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> z_e (B, channels, H/4, W/4), no output activation."""
        x = F.relu(self.down1(x))
        x = F.relu(self.down2(x))
        return self.blocks(self.conv(x))


class Decoder(nn.Module):
    """3×3 conv, residual blocks, ReLU, two stride-2 transposed convs, tanh."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        c = config.channels
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResidualBlock(c, config.residual_channels) for _ in range(config.residual_blocks))
        )
        self.up1 = nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(c // 2, 3, 4, stride=2, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        """z (B, channels, h, w) -> images in [-1, 1] (B, 3, 4h, 4w)."""
        x = F.relu(self.blocks(self.conv(z)))
        x = F.relu(self.up1(x))
        return torch.tanh(self.up2(x))


class ProductQuantizer(nn.Module):
    """`codebooks` independent EMA codebooks, one per contiguous chunk of the channels
    (`DVQEmbedding` in vidgen/modeling/vq/vq_embedding.py).

    The codebooks are buffers: they never receive gradients and are updated by exponential
    moving averages of the assigned encoder outputs, with Laplace-smoothed cluster sizes.
    """

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.codebooks = config.codebooks
        self.size = config.codebook_size
        self.dim = config.channels // config.codebooks
        self.decay = config.ema_decay
        self.eps = config.ema_eps
        self.dead_code_threshold = config.dead_code_threshold
        weight = torch.empty(self.codebooks, self.size, self.dim)
        weight.uniform_(-1.0 / self.size, 1.0 / self.size)
        self.register_buffer("weight", weight)
        self.register_buffer("cluster_size", torch.zeros(self.codebooks, self.size))
        self.register_buffer("embedding_sum", weight.clone())

    def _split(self, z: Tensor) -> Tensor:
        """(B, channels, h, w) -> (codebooks, B*h*w, dim)."""
        b, _, h, w = z.shape
        z = z.reshape(b, self.codebooks, self.dim, h * w)
        return z.permute(1, 0, 3, 2).reshape(self.codebooks, b * h * w, self.dim)

    def assign(self, z_e: Tensor) -> Tensor:
        """Nearest code per chunk: z_e (B, channels, h, w) -> codes (B, codebooks, h, w).

        Distances are computed in float32 even under autocast: bfloat16 would pick wrong codes.
        """
        b, _, h, w = z_e.shape
        z = self._split(z_e.float())
        with torch.autocast(z.device.type, enabled=False):
            distances = (
                self.weight.pow(2).sum(-1).unsqueeze(1)
                + z.pow(2).sum(-1, keepdim=True)
                - 2 * torch.bmm(z, self.weight.transpose(1, 2))
            )
        codes = distances.argmin(-1)  # (codebooks, B*h*w)
        return codes.reshape(self.codebooks, b, h, w).transpose(0, 1)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, codebooks, h, w) -> concatenated code vectors (B, channels, h, w)."""
        vectors = torch.stack(
            [F.embedding(codes[:, i], self.weight[i]) for i in range(self.codebooks)], dim=1
        )  # (B, codebooks, h, w, dim)
        b, _, h, w, _ = vectors.shape
        return vectors.permute(0, 1, 4, 2, 3).reshape(b, self.codebooks * self.dim, h, w)

    def usage(self, codes: Tensor) -> Tensor:
        """Number of assignments per code in a batch: (codebooks, size)."""
        flat = codes.transpose(0, 1).reshape(self.codebooks, -1)
        counts = torch.zeros(self.codebooks, self.size, device=codes.device)
        return counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))

    @torch.no_grad()
    def update(self, z_e: Tensor, codes: Tensor) -> Tensor:
        """One EMA step from a batch; return the code usage it used, (codebooks, size).

        When distributed, the batch statistics are summed over all ranks first, so the update is
        that of the global batch and the codebooks stay identical on every rank.
        """
        z = self._split(z_e.float())
        flat = codes.transpose(0, 1).reshape(self.codebooks, -1)
        counts = self.usage(codes)
        sums = torch.zeros_like(self.embedding_sum)
        sums.scatter_add_(1, flat.unsqueeze(-1).expand_as(z), z)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embedding_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(z)
        total = self.cluster_size.sum(-1, keepdim=True)
        smoothed = (self.cluster_size + self.eps) / (total + self.size * self.eps) * total
        self.weight.copy_(self.embedding_sum / smoothed.unsqueeze(-1))
        return counts

    def _restart_dead_codes(self, z: Tensor) -> None:
        """Move codes with EMA count below the threshold onto random encoder outputs.

        Not part of the original method (off in the paper presets). The replacement vectors are
        drawn on rank 0 and broadcast so that all ranks keep identical codebooks.
        """
        picks = torch.randint(z.shape[1], (self.codebooks, self.size), device=z.device)
        candidates = torch.gather(z, 1, picks.unsqueeze(-1).expand(-1, -1, self.dim))
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(candidates, 0)
        dead = self.cluster_size < self.dead_code_threshold
        self.cluster_size[dead] = self.dead_code_threshold
        self.embedding_sum[dead] = candidates[dead] * self.dead_code_threshold


class VQVAE(nn.Module):
    """Encoder -> product quantiser -> decoder, applied to every frame independently."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = ProductQuantizer(config)
        self.decoder = Decoder(config)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images01: Tensor) -> VQVAEOutput:
        """Training-loss forward; updates the EMA codebooks (as the original, in any mode).

        Codes and the decoder input use the codebook before the update; the commitment loss
        uses the codebook after it.
        """
        x = normalize(images01)
        z_e = self.encoder(x)
        codes = self.quantizer.assign(z_e)
        z_q = self.quantizer.lookup(codes)
        usage = self.quantizer.update(z_e.detach(), codes)
        z_q_bar = self.quantizer.lookup(codes)
        z_q_st = z_e + (z_q - z_e).detach()  # straight-through estimator
        reconstruction = self.decoder(z_q_st)
        loss_reconstruction = F.mse_loss(reconstruction, x)
        loss_commitment = self.config.commitment_weight * F.mse_loss(z_e, z_q_bar)
        p = usage / usage.sum(-1, keepdim=True)
        perplexity = torch.exp(-torch.xlogy(p, p).sum(-1))
        return VQVAEOutput(
            reconstruction=reconstruction,
            codes=codes,
            loss_reconstruction=loss_reconstruction,
            loss_commitment=loss_commitment,
            loss=loss_reconstruction + loss_commitment,
            perplexity=perplexity,
        )

    def encode(self, images01: Tensor) -> Tensor:
        """Images in [0, 1] (B, 3, H, W) -> codes (B, codebooks, H/4, W/4); no EMA update."""
        return self.quantizer.assign(self.encoder(normalize(images01)))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, codebooks, h, w) -> images in [0, 1] (B, 3, 4h, 4w), clamped."""
        decoded = self.decoder(self.quantizer.lookup(codes))
        return (decoded * 0.5 + 0.5).clamp(0.0, 1.0)


def optimizers(
    model: VQVAE,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float = 1e-8,
    fused: bool = False,
) -> dict[str, torch.optim.Adam]:
    """Two separate Adam optimisers (encoder, decoder) as the original; the codebooks use EMA.

    The paper's lr and betas are the configuration schema's `vqvae.train` defaults (from
    configs/vqvae/Base-VQVAE.yaml and vidgen/config/defaults.py); eps is torch's default, which
    the original keeps (vidgen/solver/build.py).

    `fused` picks the single-kernel Adam (for CUDA); the default is torch's own choice.
    """
    return {
        name: torch.optim.Adam(part.parameters(), lr=lr, betas=betas, eps=eps,
                               fused=fused or None)
        for name, part in (("encoder", model.encoder), ("decoder", model.decoder))
    }
