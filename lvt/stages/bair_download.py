"""Stage: download the BAIR robot pushing tarball (resumable, progress bar, size check)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from lvt.data.bair import download
from lvt.stages.common import run_stage, stage_parser


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Fetch source.bair.url to --out, checking source.bair.size (settings: source)."""
    bair = settings["source"]["bair"]
    download(bair["url"], args.out, bair["size"])


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_output("--out", help="tarball to write")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
