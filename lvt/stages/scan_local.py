"""Stage: list a local folder of videos as a source manifest, probing each file."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lvt.config import ConfigError
from lvt.data.sources import scan_local, write_manifest
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Scan source.local.path and write the manifest to --manifest (settings: source)."""
    local = settings["source"]["local"]
    if not local["path"]:
        raise ConfigError("config key source.local.path: required to scan a local folder")
    rows = scan_local(
        local["path"], local["split_by_folder"], local["test_fraction"], local["seed"]
    )
    for row in rows:
        if row.status != "ok":
            log.warning("%s: skipped, %s", row.path, row.reason)
    counts = Counter((row.split, row.status) for row in rows)
    log.info("%s: %s", local["path"], dict(sorted(counts.items())))
    write_manifest(args.manifest, rows)


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_output("--manifest", help="source manifest to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
