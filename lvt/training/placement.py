"""What both training tasks set up alike: where the model trains and which part of a batch is
this process's."""

from __future__ import annotations

import torch
from torch import nn

from lvt.training.acceleration import Acceleration
from lvt.training.distributed import Distributed
from lvt.training.loop import LoopSettings


class PlacedTask:
    """A training task's model on its device, and its share of each global batch.

    `model` is the module whose weights are saved; `network` is the same model wrapped for
    several processes and prepared for the acceleration that `loop` asks for (precision,
    compile), the one to call in a step. `generator` draws the batches of `loop.batch_size`
    (the global batch); every process seeds it alike with `loop.seed`, so all draw the same
    global batch and each keeps its `share` of it.
    """

    def __init__(self, model: nn.Module, loop: LoopSettings, distributed: Distributed) -> None:
        self.acceleration = Acceleration.from_settings(loop, distributed.device)
        self.model = model.to(distributed.device).train()
        self.network = self.acceleration.prepare(distributed.wrap(self.model))
        self.batch_size = loop.batch_size
        self.share = distributed.share(loop.batch_size)
        self.distributed = distributed
        self.generator = torch.Generator().manual_seed(loop.seed)

    @property
    def device(self) -> torch.device:
        """Where the task trains: its process's device."""
        return self.distributed.device
