"""VQ-VAE training task: random single frames, two Adam optimisers, EMA codebooks (§2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.images import frames_to_images
from lvt.metrics import psnr_from_mse
from lvt.models import vqvae


class VQVAETraining:
    """One step = one batch of frames drawn uniformly from the whole training split."""

    def __init__(
        self,
        model: vqvae.VQVAE,
        frames: VideoArrays,
        batch_size: int,
        lr: float,
        betas: tuple[float, float],
        seed: int,
        device: torch.device,
    ) -> None:
        self.model = model.to(device).train()
        self.optimizers = vqvae.optimizers(model, lr=lr, betas=betas)
        self.frames = frames
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)

    def step(self) -> dict[str, float]:
        indices = torch.randint(self.frames.num_items, (self.batch_size,), generator=self.generator)
        images = frames_to_images(self.frames.items(indices.numpy()), self.device)
        output = self.model(images)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        with torch.no_grad():
            reconstruction = (output.reconstruction * 0.5 + 0.5).clamp(0, 1)
            psnr = psnr_from_mse(torch.mean((reconstruction - images) ** 2))
        metrics = {
            "loss": output.loss.item(),
            "loss_reconstruction": output.loss_reconstruction.item(),
            "loss_commitment": output.loss_commitment.item(),
            "psnr": psnr.item(),
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
