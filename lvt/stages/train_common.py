"""What the two training stages share: their arguments, run fingerprint and outputs."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from lvt.atomic import atomic_path
from lvt.checkpoints import save_model
from lvt.stages.common import add_threads_option, stage_parser
from lvt.training.loop import LoopSettings, TrainingTask, train


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


def training_parser(description: str, data_option: str, data_help: str) -> argparse.ArgumentParser:
    """The arguments both training stages take: their data, state folder and outputs."""
    parser = stage_parser(description)
    parser.add_argument(data_option, type=Path, required=True, help=data_help)
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="resumable checkpoints (kept outside the rule's outputs)")
    parser.add_argument("--model", type=Path, required=True, help="trained model file")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics CSV")
    add_threads_option(parser)
    return parser


def train_and_publish(
    args: argparse.Namespace,
    task: TrainingTask,
    loop: LoopSettings,
    run_fingerprint: str,
    kind: str,
    config: Any,
    model: torch.nn.Module,
    provenance: dict[str, Any],
) -> None:
    """Train (resuming from --state-dir), then write --model and --metrics atomically."""
    log = logging.getLogger(f"lvt.stages.train_{kind}")
    metrics = train(task, loop, args.state_dir, run_fingerprint, log)
    digest = save_model(args.model, kind, config, model, extra={"steps": loop.steps, **provenance})
    publish(metrics, args.metrics)
    log.info("wrote %s (sha256 %s)", args.model, digest)
