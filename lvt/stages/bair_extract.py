"""Stage: unpack only the TFRecord files of the BAIR tarball, one folder per split."""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lvt.atomic import require_free_space
from lvt.data.bair import extract_tfrecords
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Unpack --tar into --out-dir/{train,test}/ (no settings); log each skipped member and why.

    The TFRecords are nearly all of the tarball, so its size is the space they need.
    """
    require_free_space(args.out_dir, os.path.getsize(args.tar),
                       f"the TFRecord files unpacked from {args.tar}")
    unpacked = extract_tfrecords(args.tar, args.out_dir)
    for name, reason in unpacked.skipped:
        log.warning("%s: skipped member %r: %s", args.tar, name, reason)
    log.info("%s: TFRecord files per split %s, %d other members skipped", args.out_dir,
             dict(Counter(path.parent.name for path in unpacked.files)), len(unpacked.skipped))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--tar", required=True, help="the BAIR tarball")
    parser.add_output("--out-dir", help="folder for {train,test}/*.tfrecords")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
