"""Stage: every score file of the evaluation as one HTML table for the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lvt.atomic import write_text
from lvt.report import scores_page
from lvt.stages.common import run_stage, stage_parser


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    write_text(args.out, scores_page(args.scores))


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--scores", type=Path, nargs="+", required=True, help="score JSON files")
    parser.add_output("--out", help="HTML table")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
