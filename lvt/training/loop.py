"""One training loop for both models.

It fixes two failures of the authors' trainer (rakhimovv/lvt at commit 0899c21): there,
`TrainerBase.train` logs any exception and returns, so a crashed run exits with status 0
(https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/engine/train_loop.py), and `--resume`
restores the weights only and restarts at step 0 (`DefaultTrainer.resume_or_load`,
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/engine/defaults.py). Here every exception
and every non-finite loss ends the process with a non-zero status, and a killed run resumes
exactly from its last checkpoint (model, optimisers, step and every random state), which lives
outside the rule's declared outputs so that Snakemake never deletes it. Each checkpoint is a
new file, `checkpoint-<step>.pt`, carrying a digest of its contents
(`lvt.checkpoints.write_payload`); the older ones are deleted only once it has been read back
and verified, and a resumed run skips, with a log line, any that is damaged or of other settings.
With several processes, rank 0 alone writes the checkpoints and metrics and every rank loads the
checkpoint; the tasks keep all ranks' weights and random states identical, so rank 0's are
everyone's.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from lvt.checkpoints import read_payload, write_payload
from lvt.errors import InputError
from lvt.training.distributed import SINGLE_PROCESS, Distributed

CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)\.pt")
METRICS_NAME = "metrics.csv"


class TrainingTask(Protocol):
    """A model with its optimisers and data: one call of `step` is one optimisation step."""

    def step(self) -> dict[str, float]:
        """Run one step; return scalar metrics, `loss` among them."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, data random state."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class HeldOut(Protocol):
    """Scores of the model on fixed held-out data, logged beside the training metrics."""

    names: tuple[str, ...]
    """The metrics it returns: the columns it adds, empty in the rows it is not evaluated at."""
    every: int
    """Steps between evaluations (the last step is always evaluated)."""

    def __call__(self) -> dict[str, float]:
        """Evaluate the model as it is now, drawing from no random stream (so that training
        and its resumption stay exact)."""


@dataclass(frozen=True)
class LoopSettings:
    """The settings every training run shares: the schema's `$defs/loop`, which describes them
    and holds their defaults. `train` follows the schedule (steps, checkpoint_every, log_every);
    the rest sets up the processes (`lvt.training.run`) and the tasks (`PlacedTask`)."""

    steps: int
    batch_size: int
    seed: int
    checkpoint_every: int
    log_every: int
    device: str
    precision: str
    tf32: bool
    compile: bool


def _random_states() -> dict[str, Any]:
    """The global generators' states; CUDA's of this process's device only, which every rank
    of a multi-GPU run shares (the same seed, the same draws), so that rank 0's fits all."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def _restore_random_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint taken after `step` steps."""
    return f"checkpoint-{step}.pt"


def checkpoints(state_dir: Path) -> list[Path]:
    """The checkpoint files in `state_dir`, newest (most steps) first."""
    found = [(int(match[1]), path) for path in state_dir.glob("checkpoint-*.pt")
             if (match := CHECKPOINT_PATTERN.fullmatch(path.name))]
    return [path for _, path in sorted(found, reverse=True)]


def _sync(path: Path) -> None:
    """Flush a file and its folder's entry for it to the disk: a file renamed into a new name may
    otherwise reach the disk after the deletion of the checkpoint it replaces."""
    for target in (path, path.parent):
        handle = os.open(target, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _save_checkpoint(state_dir: Path, task: TrainingTask, step: int, fingerprint: str) -> None:
    """Write this step's checkpoint, flush it to the disk and read it back to verify it, and only
    then delete all others, so that a good checkpoint exists at every moment."""
    path = state_dir / checkpoint_name(step)
    write_payload(path, {"task": task.state_dict(), "step": step, "fingerprint": fingerprint,
                         "random": _random_states()})
    _sync(path)
    read_payload(path, "training checkpoint")
    for old in checkpoints(state_dir):
        if old != path:
            old.unlink(missing_ok=True)


def _resume(state_dir: Path, task: TrainingTask, fingerprint: str, log: logging.Logger) -> int:
    """Load the newest checkpoint that is intact and belongs to this exact run; return the step
    to start at. Each one passed over is logged with the reason."""
    found = checkpoints(state_dir)
    for path in found:
        try:
            state = read_payload(path, "training checkpoint")
        except InputError as err:
            log.warning("skipping %s", err)
            continue
        if state.get("fingerprint") != fingerprint:
            log.info("skipping %s: it was made with other settings or data", path)
            continue
        task.load_state_dict(state["task"])
        _restore_random_states(state["random"])
        log.info("resuming from %s at step %d", path, state["step"])
        return state["step"]
    if found:
        log.info("no usable checkpoint in %s; starting afresh", state_dir)
    return 0


def _metrics_writer(path: Path, start: int, fields: list[str]) -> tuple[Any, csv.DictWriter]:
    """Open the metrics CSV, keeping only rows before `start` of a resumed run."""
    kept: list[dict[str, str]] = []
    if start and path.exists():
        with path.open(newline="") as old:
            kept = [row for row in csv.DictReader(old) if int(row["step"]) <= start]
    handle = path.open("w", newline="")
    writer = csv.DictWriter(handle, fieldnames=["step", *fields], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    return handle, writer


def train(
    task: TrainingTask,
    settings: LoopSettings,
    state_dir: Path,
    fingerprint: str,
    log: logging.Logger,
    distributed: Distributed = SINGLE_PROCESS,
    held_out: HeldOut | None = None,
) -> Path:
    """Train `task` to `settings.steps`, resuming from `state_dir`; return the metrics CSV path.

    `fingerprint` identifies the settings and data; a checkpoint with another one is ignored.
    The task's metrics must be those of the global batch, the same on every rank, so that a
    non-finite loss stops all ranks at once. `held_out` is evaluated on rank 0 and logged every
    `held_out.every` steps, in a row of its own where that is not a logged step.
    """
    if distributed.is_main:
        state_dir.mkdir(parents=True, exist_ok=True)
    start = _resume(state_dir, task, fingerprint, log)
    metrics_path = state_dir / METRICS_NAME
    handle = writer = None
    progress = tqdm(total=settings.steps, initial=start, desc="train", unit="step",
                    mininterval=2.0, dynamic_ncols=True, disable=not distributed.is_main)
    try:
        for step in range(start + 1, settings.steps + 1):
            metrics = task.step()
            if not math.isfinite(metrics["loss"]):
                raise FloatingPointError(f"loss is {metrics['loss']} at step {step}")
            if not distributed.is_main:
                continue
            if writer is None:
                handle, writer = _metrics_writer(
                    metrics_path, start, [*sorted(metrics), *(held_out.names if held_out else ())])
            last = step == settings.steps
            evaluate = held_out is not None and (step % held_out.every == 0 or last)
            if step % settings.log_every == 0 or last or evaluate:
                writer.writerow({"step": step, **metrics, **(held_out() if evaluate else {})})
                handle.flush()
                progress.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
            progress.update()
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                _save_checkpoint(state_dir, task, step, fingerprint)
    finally:
        progress.close()
        if handle is not None:
            handle.close()
    log.info("finished %d steps", settings.steps)
    return metrics_path
