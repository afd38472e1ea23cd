"""Stage: read one BAIR TFRecord file (no TensorFlow) into a shard of frames and actions."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from lvt.data.bair import convert_tfrecord
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Convert --tfrecord into the shard --out (no settings)."""
    count = convert_tfrecord(args.tfrecord, args.out)
    log.info("%s: %d videos", args.tfrecord, count)


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--tfrecord", required=True, help="one BAIR .tfrecords file")
    parser.add_output("--out", help="shard to write (.h5)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
