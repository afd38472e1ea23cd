"""Transformer training task: random clips, one random subscale slice per clip (§4.3, §4.9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lvt.data.dataset import VideoArrays
from lvt.errors import InputError
from lvt.metrics import nats_to_bits
from lvt.models import transformer
from lvt.models.transformer import VideoTransformer


class TransformerTraining:
    """One step = `batch_size` clips of `clip_frames` code frames, each with one random slice.

    A clip comes from a uniformly drawn video at a uniformly drawn start; videos shorter than
    a clip are left out (the reference rejected them one by one).
    """

    def __init__(
        self,
        model: VideoTransformer,
        codes: VideoArrays,
        clip_frames: int,
        n_prime: int,
        batch_size: int,
        optimizer: torch.optim.Optimizer,
        seed: int,
        device: torch.device,
    ) -> None:
        self.model = model.to(device).train()
        self.optimizer = optimizer
        self.codes = codes
        self.clip_frames = clip_frames
        self.n_prime = n_prime
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        lengths = np.asarray(codes.lengths)
        self.videos = np.flatnonzero(lengths >= clip_frames)
        if not len(self.videos):
            raise InputError(
                f"{codes.path}: no video has the {clip_frames} frames a training clip needs "
                f"(longest: {lengths.max(initial=0)})"
            )
        self.max_start = lengths[self.videos] - clip_frames

    def clips(self) -> torch.Tensor:
        """A batch of random clips, (B, codebooks, T, H, W) int64 on the training device."""
        picks = torch.randint(len(self.videos), (self.batch_size,), generator=self.generator)
        offsets = torch.rand(self.batch_size, generator=self.generator)
        batch = []
        for pick, offset in zip(picks.tolist(), offsets.tolist(), strict=True):
            start = int(offset * (self.max_start[pick] + 1))
            batch.append(self.codes.clip(int(self.videos[pick]), start, self.clip_frames))
        clips = torch.from_numpy(np.stack(batch).astype(np.int64))
        return clips.permute(0, 2, 1, 3, 4).to(self.device)

    def step(self) -> dict[str, float]:
        clips = self.clips()
        slices = transformer.random_slices(
            self.batch_size, self.model.config.stride, self.n_prime, self.generator,
            frames=self.clip_frames,
        )
        context, target, ignore, index = transformer.training_batch(
            clips, slices, self.model.config, self.n_prime
        )
        logits = self.model(context, target, index)
        loss = transformer.slice_loss(logits, target, ignore)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "bits_per_code": nats_to_bits(loss.item())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
