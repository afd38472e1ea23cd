"""What every stage module shares: argument parsing, settings validation, logging, exit codes.

A stage module is thin: it parses its arguments, calls the library and writes its outputs
atomically. Bad input or configuration ends the process with a one-line message naming the file
or key and exit status 2; any other exception keeps its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lvt.config import ConfigError, load_settings
from lvt.errors import InputError

if TYPE_CHECKING:
    import torch

Stage = Callable[[argparse.Namespace, dict[str, Any]], None]


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--settings` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--settings",
        default="{}",
        help="JSON with the config sections this stage needs (validated against the schema)",
    )
    return parser


def run_stage(
    stage: Stage, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> None:
    """Parse arguments, validate settings and run `stage`, mapping bad input to exit status 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        stage(args, load_settings(args.settings))
    except (ConfigError, InputError) as error:
        logging.getLogger(parser.prog).error("%s", error)
        sys.exit(2)


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
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")


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

