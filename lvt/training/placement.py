"""What both training tasks set up alike: where the model trains and which part of a batch is
this process's."""

from __future__ import annotations

import torch
from torch import nn

from lvt.training.acceleration import Acceleration
from lvt.training.distributed import Distributed


class PlacedTask:
    """A training task's model on its device, and its share of each global batch.

    `model` is the module whose weights are saved; `network` is the same model wrapped for
    several processes and prepared for acceleration, the one to call in a step. `generator`
    draws the batches; every process seeds it alike, so all draw the same global batch and each
    keeps its `share` of it.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int,
        seed: int,
        distributed: Distributed,
        acceleration: Acceleration,
    ) -> None:
        self.model = model.to(distributed.device).train()
        self.network = acceleration.prepare(distributed.wrap(self.model))
        self.batch_size = batch_size
        self.share = distributed.share(batch_size)
        self.distributed = distributed
        self.acceleration = acceleration
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def device(self) -> torch.device:
        """Where the task trains: its process's device."""
        return self.distributed.device
