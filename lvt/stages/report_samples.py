"""Stage: one HTML page per sampled test video, its GIFs inline, for the report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lvt.atomic import atomic_path
from lvt.report import sample_pages
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger("lvt.stages.report_samples")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    pages = sample_pages(args.samples)
    with atomic_path(args.out_dir) as out:
        out.mkdir()
        for name, page in pages.items():
            (out / f"{name}.html").write_text(page)
    log.info("wrote %d pages to %s", len(pages), args.out_dir)


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--samples", type=Path, required=True, help="the sample stage's folder")
    parser.add_output("--out-dir", help="folder for the HTML pages")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
