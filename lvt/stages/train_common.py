"""What the two training stages share: their arguments, processes, run fingerprint, outputs."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lvt.atomic import atomic_path
from lvt.checkpoints import save_model
from lvt.config import ConfigError
from lvt.stages.common import StageParser, add_threads_option, select_device, stage_parser
from lvt.training.acceleration import set_tf32
from lvt.training.distributed import Distributed, process_group
from lvt.training.loop import HeldOut, LoopSettings, TrainingTask, train


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


def training_parser(description: str, data_option: str, data_help: str) -> StageParser:
    """The arguments both training stages take: their data, state folder and outputs."""
    parser = stage_parser(description)
    parser.add_argument(data_option, type=Path, required=True, help=data_help)
    parser.add_output("--state-dir", help="resumable checkpoints (kept outside the rule's outputs)")
    parser.add_output("--model", help="trained model file")
    parser.add_output("--metrics", help="metrics CSV")
    add_threads_option(parser)
    return parser


@contextmanager
def training_processes(
    kind: str, train_settings: Mapping[str, Any], threads: int
) -> Iterator[Distributed]:
    """This process's place in the run: one process, or one of those torchrun started.

    The job's `threads` are shared by the processes on this machine; the global batch
    (`<kind>.train.batch_size`) must split evenly over all processes. Only rank 0 logs below
    warnings.
    """
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device = select_device(train_settings["device"], threads // local_processes)
    with process_group(device) as distributed:
        batch_size = train_settings["batch_size"]
        if batch_size % distributed.world_size:
            raise ConfigError(f"config key {kind}.train.batch_size: {batch_size} does not split "
                              f"evenly over {distributed.world_size} training processes")
        if distributed.device.type == "cuda":
            set_tf32(train_settings["tf32"])
        if not distributed.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        yield distributed


def train_and_publish(
    args: argparse.Namespace,
    task: TrainingTask,
    loop: LoopSettings,
    run_fingerprint: str,
    kind: str,
    config: Any,
    model: torch.nn.Module,
    provenance: dict[str, Any],
    distributed: Distributed,
    held_out: HeldOut | None = None,
) -> None:
    """Train (resuming from --state-dir), logging `held_out` as `train` does, then write --model
    and --metrics atomically (rank 0)."""
    log = logging.getLogger(f"lvt.stages.train_{kind}")
    metrics = train(task, loop, args.state_dir, run_fingerprint, log, distributed, held_out)
    if distributed.is_main:
        digest = save_model(args.model, kind, config, model,
                            extra={"steps": loop.steps, **provenance})
        publish(metrics, args.metrics)
        log.info("wrote %s (sha256 %s)", args.model, digest)
