"""Stage: one HTML page per sampled test video, its GIFs inline, and the sample stage's contact
sheets (PNG, which the report shows inline) for the report."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from lvt.atomic import atomic_path
from lvt.report import contact_sheets, sample_pages
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger("lvt.stages.report_samples")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    pages = sample_pages(args.samples)
    sheets = contact_sheets(args.samples)
    with atomic_path(args.out_dir) as out:
        out.mkdir()
        for name, page in pages.items():
            (out / f"{name}.html").write_text(page)
    with atomic_path(args.sheets_dir) as out:
        out.mkdir()
        for name, sheet in sheets.per_video.items():
            shutil.copyfile(sheet, out / f"{name}.png")
    with atomic_path(args.overview) as tmp:
        shutil.copyfile(sheets.overview, tmp)
    log.info("wrote %d pages to %s, %d contact sheets to %s and the overview of %d videos to %s",
             len(pages), args.out_dir, len(sheets.per_video), args.sheets_dir,
             sheets.overview_videos, args.overview)


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--samples", type=Path, required=True, help="the sample stage's folder")
    parser.add_output("--out-dir", help="folder for the HTML pages")
    parser.add_output("--sheets-dir", help="folder for the contact sheets of each video (PNG)")
    parser.add_output("--overview", help="the overview contact sheet (PNG)")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
