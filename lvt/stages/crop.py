"""Stage: pack the center-cropped frame shards of one split into the split's dataset.

Despite its name this stage crops nothing: the frames stage has already cut each frame's
central square and resized it, in one FFmpeg filter graph (lvt.data.frames). This stage checks
the shards' frame size and packs them into one HDF5 dataset (lvt.data.packing), each video with
its own frame rate and source frame size, sorted by video_id.

The report (--manifest) lists every video of the split with its final status and reason,
including those skipped when scanning and those that failed to trim or decode.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lvt.data.packing import pack_split
from lvt.data.sources import write_manifest
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Pack --frames into --out, report to --manifest (settings: source, preprocess)."""
    rows = pack_split(args.frames, args.out, settings["preprocess"]["size"],
                      settings["source"]["kind"])
    write_manifest(args.manifest, rows)
    counts = Counter(row.status for row in rows)
    log.info("%s: %d videos packed; %s", args.out, counts["ok"], dict(counts))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--frames", required=True, nargs="+", help="frame shards of one split")
    parser.add_output("--out", help="dataset to write (.h5)")
    parser.add_output("--manifest", help="report of the split to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
