"""Data-parallel training across the processes `torchrun` starts (one per GPU).

Every process draws the same global batch from the same generator and trains on its own equal
share of it; gradients are averaged by DistributedDataParallel, so N processes take the same
steps as one process with the whole batch. A single process (no torchrun) needs no process
group: every helper here is then the identity.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes, and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics and outputs."""
        return self.rank == 0

    def share(self, global_batch: int) -> slice:
        """This rank's part of a global batch of `global_batch` examples."""
        if global_batch % self.world_size:
            raise ValueError(f"a global batch of {global_batch} does not split evenly over "
                             f"{self.world_size} processes")
        size = global_batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of `values` over all ranks (a new tensor)."""
        total = values.clone()
        if self.world_size > 1:
            dist.all_reduce(total)
        return total

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of `values` over all ranks (a new tensor)."""
        return self.sum(values) / self.world_size

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` under DistributedDataParallel when there are several processes.

        Buffers are not broadcast at each forward: the only ones, the VQ-VAE's EMA codebooks,
        are kept identical by all-reducing their statistics (lvt.models.vqvae).
        """
        if self.world_size == 1:
            return module
        device_ids = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                                   broadcast_buffers=False)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world_size > 1:
            dist.barrier()


SINGLE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"))
"""One process on the CPU, for tasks made without a process group."""


@contextmanager
def process_group(device: torch.device) -> Iterator[Distributed]:
    """Join the process group that torchrun's environment (RANK, WORLD_SIZE, ...) describes.

    On CUDA each process trains on GPU LOCAL_RANK with NCCL; on the CPU the group uses gloo.
    Without torchrun this is one process on `device` and no group is made.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield Distributed(rank=0, world_size=1, device=device)
        return
    cuda = device.type == "cuda"
    if cuda:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    try:
        yield Distributed(rank=dist.get_rank(), world_size=world_size, device=device)
    finally:
        dist.destroy_process_group()
