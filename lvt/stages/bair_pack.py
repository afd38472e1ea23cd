"""Stage: merge the converted BAIR shards of one split into the split's dataset and report.

Videos are ordered by TFRecord file name, then by position in the file; the report (--manifest)
lists every video with its status.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

from lvt.atomic import require_free_space
from lvt.data.bair import pack_split
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Pack --shards into --out and list the videos in --manifest (no settings)."""
    require_free_space(args.out, sum(os.path.getsize(shard) for shard in args.shards),
                       f"the frames of {len(args.shards)} shards")
    rows = pack_split(args.shards, args.out, args.manifest, args.split)
    log.info("%s: %d videos packed", args.out, len(rows))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--shards", required=True, nargs="+", help="shards of one split")
    parser.add_argument("--split", required=True, choices=["train", "test"])
    parser.add_output("--out", help="dataset to write (.h5)")
    parser.add_output("--manifest", help="report of the split to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
