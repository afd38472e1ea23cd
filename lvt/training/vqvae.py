"""VQ-VAE training task: random single frames, two Adam optimisers, EMA codebooks.

As the authors' code at commit 0899c21 trains it (`VQVAEModel` and its optimisers,
configs/vqvae/Base-VQVAE.yaml):
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/modeling/meta_arch/vqvae.py
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.images import frames_to_images
from lvt.metrics import psnr_from_mse
from lvt.models import vqvae
from lvt.training.distributed import SINGLE_PROCESS, Distributed
from lvt.training.loop import LoopSettings
from lvt.training.placement import PlacedTask


@dataclass(frozen=True)
class AdamSettings:
    """The two Adam optimisers' settings of `vqvae.train` (the schema holds their defaults);
    `fused_adam` takes effect on CUDA only."""

    lr: float
    betas: tuple[float, float]
    fused_adam: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))


class VQVAETraining(PlacedTask):
    """One step = one batch of frames drawn uniformly from the whole training split.

    `loop.batch_size` is the global batch: with several processes each trains on its share of
    the same draw, and the metrics are those of the whole batch. The task trains on
    `distributed.device`; the default is one process on the CPU.
    """

    def __init__(
        self,
        model: vqvae.VQVAE,
        frames: VideoArrays,
        loop: LoopSettings,
        adam: AdamSettings,
        distributed: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(model, loop, distributed)
        fused = adam.fused_adam and self.device.type == "cuda"
        self.optimizers = vqvae.optimizers(model, lr=adam.lr, betas=adam.betas, fused=fused)
        self.frames = frames

    def step(self) -> dict[str, float]:
        indices = torch.randint(self.frames.num_items, (self.batch_size,), generator=self.generator)
        images = frames_to_images(self.frames.items(indices[self.share].numpy()), self.device)
        with self.acceleration.autocast(self.device):
            output = self.network(images)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        with torch.no_grad():
            reconstruction = (output.reconstruction.float() * 0.5 + 0.5).clamp(0, 1)
            mse = torch.mean((reconstruction - images) ** 2)
            losses = torch.stack([output.loss, output.loss_reconstruction, output.loss_commitment,
                                  mse]).float()
            loss, loss_reconstruction, loss_commitment, mse = self.distributed.mean(losses)
        metrics = {
            "loss": loss.item(),
            "loss_reconstruction": loss_reconstruction.item(),
            "loss_commitment": loss_commitment.item(),
            "psnr": psnr_from_mse(mse).item(),
        }
        metrics.update({f"perplexity_{k}": p.item() for k, p in enumerate(output.perplexity)})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.generator.set_state(state["generator"])
