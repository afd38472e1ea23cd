"""What every stage module shares: argument parsing, settings validation, logging, exit codes,
and the write locks on its outputs.

A stage module is thin: it parses its arguments, calls the library and writes its outputs
atomically. While it runs it holds the write lock of every output it declares (`add_output`),
after deleting the temporaries a killed writer of them left. Bad input or configuration, a locked
output and a full disk end the process with a one-line message naming the file or key and exit
status 2; any other exception keeps its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from lvt.atomic import is_disk_full, remove_leftover_temporaries
from lvt.config import ConfigError, load_settings
from lvt.devices import available_cpus
from lvt.errors import DiskSpaceError, InputError
from lvt.locks import hold_locks

Stage = Callable[[argparse.Namespace, dict[str, Any]], None]
Options = TypeVar("Options")


class StageParser(argparse.ArgumentParser):
    """An argument parser that knows which arguments name what the stage writes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outputs: list[str] = []

    def add_output(self, *flags: str, **kwargs: Any) -> None:
        """A required argument naming a file or folder this stage writes (locked while it runs)."""
        action = self.add_argument(*flags, type=Path, required=True, **kwargs)
        self.outputs.append(action.dest)

    def written_paths(self, args: argparse.Namespace) -> list[Path]:
        """The paths the parsed `args` name as outputs."""
        return [getattr(args, dest) for dest in self.outputs]


def stage_parser(description: str) -> StageParser:
    """An argument parser with the `--settings` option every stage takes."""
    parser = StageParser(description=description)
    parser.add_argument(
        "--settings",
        default="{}",
        help="JSON with the config sections this stage needs (validated against the schema)",
    )
    return parser


def run_stage(stage: Stage, parser: StageParser, argv: Sequence[str] | None = None) -> None:
    """Parse arguments, validate settings, lock the outputs and run `stage`; bad input, a locked
    output or a full disk exit with status 2 and one message."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    log = logging.getLogger(parser.prog)
    # Only rank 0 of a multi-process training run writes; the other ranks only read.
    written = parser.written_paths(args) if os.environ.get("RANK", "0") == "0" else []
    try:
        settings = load_settings(args.settings)
        with hold_locks(written):
            for path in written:
                for leftover in remove_leftover_temporaries(path):
                    log.info("removed %s, left by a writer that was killed", leftover)
            stage(args, settings)
    except (ConfigError, InputError, DiskSpaceError) as error:
        log.error("%s", error)
        if isinstance(error, DiskSpaceError):
            _exit_at_once(2)
        sys.exit(2)
    except OSError as error:
        if not is_disk_full(error):
            raise
        where = error.filename or ", ".join(map(str, written)) or "this stage's outputs"
        log.error("%s: no space left on the device while writing it (%s)", where, error.strerror)
        _exit_at_once(2)


def _exit_at_once(status: int) -> None:
    """Exit without running exit handlers. After a full disk, HDF5 still holds the file it could
    not flush and crashes the interpreter at exit while trying again."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def from_section(options: type[Options], section: Mapping[str, Any]) -> Options:
    """A library's options dataclass filled from the validated settings `section` (which holds
    every default): each field takes the key of its name; the section's other keys are left."""
    return options(**{field.name: section[field.name] for field in fields(options)})


def add_model_inputs(parser: argparse.ArgumentParser, frames: bool = True) -> None:
    """The trained models and the test split they are scored on: `--vqvae`, `--transformer`,
    `--codes` and (with `frames`) `--dataset`."""
    parser.add_argument("--vqvae", type=Path, required=True, help="trained VQ-VAE")
    parser.add_argument("--transformer", type=Path, required=True, help="trained transformer")
    parser.add_argument("--codes", type=Path, required=True, help="test codes (HDF5)")
    if frames:
        parser.add_argument("--dataset", type=Path, required=True, help="test frames (HDF5)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """`--threads`: CPU threads for torch, as Snakemake's `threads:` gives them."""
    parser.add_argument("--threads", type=int, default=available_cpus(),
                        help="CPU threads for torch (default: the CPUs this process may run on)")


def training_parser(description: str, data_option: str, data_help: str) -> StageParser:
    """The arguments both training stages take: their data, state folder and outputs."""
    parser = stage_parser(description)
    parser.add_argument(data_option, type=Path, required=True, help=data_help)
    parser.add_output("--state-dir", help="resumable checkpoints (kept outside the rule's outputs)")
    parser.add_output("--model", help="trained model file")
    parser.add_output("--metrics", help="metrics CSV")
    add_threads_option(parser)
    return parser


def add_scoring_arguments(parser: StageParser) -> None:
    """The scoring stages' inputs and output: models, test split, sample shards, JSON."""
    add_model_inputs(parser)
    parser.add_argument("--samples", type=Path, nargs="+", required=True,
                        help="every shard of the fvd_sample stage")
    parser.add_output("--out", help="scores (JSON)")
    add_threads_option(parser)
