"""Where torch computes: the CPUs this process may use, and the device a `device` setting names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lvt.config import ConfigError

if TYPE_CHECKING:
    import torch


def available_cpus() -> int:
    """The CPUs in this process's affinity mask: what a job scheduler or `taskset` granted it.

    torch's default thread count ignores the mask, which oversubscribes a shared host.
    """
    return len(os.sched_getaffinity(0))


def select_device(choice: str, threads: int) -> torch.device:
    """The torch device named by a `device` setting (auto: CUDA when present); sets CPU threads.

    torch is imported here, not at module level, so that the data stages start quickly.
    """
    import torch

    torch.set_num_threads(max(1, threads))
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key device: 'cuda' was asked for but no CUDA device is present")
    return torch.device(choice)
