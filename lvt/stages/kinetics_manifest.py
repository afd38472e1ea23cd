"""Stage: merge the Kinetics-600 download outcomes and the invalid CSV rows into the source
manifest that trim, frames and crop consume; failures keep their reason for the final report."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lvt.data.kinetics import read_kinetics_csv, read_outcomes, source_rows, without_duplicate_ids
from lvt.data.sources import SPLITS, write_manifest
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Write --manifest from --train-outcomes, --test-outcomes and the CSVs (settings: source)."""
    kinetics = settings["source"]["kinetics600"]
    rows = []
    for split in SPLITS:
        csv_path = kinetics[f"{split}_csv"]
        _, invalid = read_kinetics_csv(csv_path, kinetics["limit"])
        outcomes = [outcome for path in getattr(args, f"{split}_outcomes")
                    for outcome in read_outcomes(path)]
        rows += source_rows(outcomes, invalid, split, csv_path)
    rows = without_duplicate_ids(rows)
    counts = Counter((row.split, row.status) for row in rows)
    log.info("source manifest: %s", dict(sorted(counts.items())))
    write_manifest(args.manifest, rows)


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    for split in SPLITS:
        parser.add_argument(f"--{split}-outcomes", nargs="+", required=True,
                            help=f"outcome manifests of every {split} download shard")
    parser.add_output("--manifest", help="source manifest to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
