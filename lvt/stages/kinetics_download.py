"""Stage: download one shard of one Kinetics-600 split with yt-dlp and write its outcomes.

The shard is every valid row of the split's CSV (after source.kinetics600.limit) whose position
modulo source.kinetics600.shards is --shard. Clips go to `<folder>/videos/<label>/`; every outcome
is also appended to `<folder>/journal/<split>/`, which a later run reads so that finished clips
are never fetched again and failures are retried only when asked (retry_failed, retry_unavailable).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lvt.config import check_kinetics_download
from lvt.data.kinetics import (
    DownloadOptions,
    download_shard,
    journal_path,
    read_journals,
    read_kinetics_csv,
    shard_of,
    write_outcomes,
)
from lvt.data.sources import SPLITS
from lvt.stages.common import from_section, run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Download this shard's clips and write the outcome manifest --out (settings: source)."""
    kinetics = settings["source"]["kinetics600"]
    check_kinetics_download(kinetics, args.split, args.shard)
    csv_path, shards = kinetics[f"{args.split}_csv"], kinetics["shards"]
    valid, _ = read_kinetics_csv(csv_path, kinetics["limit"])
    rows = shard_of(valid, args.shard, shards)
    folder = kinetics["folder"]
    outcomes = download_shard(
        rows,
        folder,
        journal_path(folder, args.split, args.shard),
        from_section(DownloadOptions, kinetics),
        previous=read_journals(folder, args.split),
    )
    write_outcomes(args.out, outcomes)
    counts = Counter(outcome.status for outcome in outcomes)
    log.info("%s shard %d: %s of %d clips", args.split, args.shard, dict(counts), len(rows))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--shard", required=True, type=int,
                        help="0 .. source.kinetics600.shards - 1")
    parser.add_output("--out", help="outcome manifest to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
