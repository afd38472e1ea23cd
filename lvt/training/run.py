"""One training run, as both training stages make it: its processes, its fingerprint, training,
and publishing the trained model and its metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lvt.atomic import atomic_path
from lvt.checkpoints import save_model
from lvt.config import ConfigError
from lvt.devices import select_device
from lvt.training.acceleration import set_tf32
from lvt.training.distributed import Distributed, process_group
from lvt.training.loop import HeldOut, LoopSettings, TrainingTask, train


@dataclass(frozen=True)
class RunFiles:
    """Where a run keeps its resumable checkpoints, and the model and metrics it publishes."""

    state_dir: Path
    model: Path
    metrics: Path


@dataclass(frozen=True)
class PublishedModel:
    """The model file a run publishes: the `kind` of model, its `config` and weights, and
    `provenance` (where its data came from), saved beside them."""

    kind: str
    config: Any
    model: torch.nn.Module
    provenance: dict[str, Any]


def fingerprint(settings: dict[str, Any], *inputs: Path) -> str:
    """Identify a training run by its settings and the identity (size, mtime) of its input files.

    A resumable checkpoint is only reused by a run with the same fingerprint.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in inputs:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def publish(source: Path, target: Path) -> None:
    """Copy `source` to a declared output atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


@contextmanager
def training_processes(kind: str, loop: LoopSettings, threads: int) -> Iterator[Distributed]:
    """This process's place in the run: one process, or one of those torchrun started.

    The job's `threads` are shared by the processes on this machine; the global batch
    (`<kind>.train.batch_size`) must split evenly over all processes. Only rank 0 logs below
    warnings.
    """
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device = select_device(loop.device, threads // local_processes)
    with process_group(device) as distributed:
        if loop.batch_size % distributed.world_size:
            raise ConfigError(f"config key {kind}.train.batch_size: {loop.batch_size} does not "
                              f"split evenly over {distributed.world_size} training processes")
        if distributed.device.type == "cuda":
            set_tf32(loop.tf32)
        if not distributed.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        yield distributed


def train_and_publish(
    task: TrainingTask,
    loop: LoopSettings,
    files: RunFiles,
    run_fingerprint: str,
    published: PublishedModel,
    distributed: Distributed,
    held_out: HeldOut | None = None,
) -> None:
    """Train (resuming from `files.state_dir` a run of the same fingerprint), logging
    `held_out` as `train` does, then write the model and metrics files atomically (rank 0)."""
    log = logging.getLogger(f"lvt.training.{published.kind}")
    metrics = train(task, loop, files.state_dir, run_fingerprint, log, distributed, held_out)
    if distributed.is_main:
        digest = save_model(files.model, published.kind, published.config, published.model,
                            extra={"steps": loop.steps, **published.provenance})
        publish(metrics, files.metrics)
        log.info("wrote %s (sha256 %s)", files.model, digest)
