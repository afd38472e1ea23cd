"""Stage: the per-step PSNR and SSIM of the samples beside copy-last-frame and the VQ-VAE
reconstruction, from frame_scores.json, as a figure for the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lvt.atomic import atomic_path
from lvt.report import save_per_step_plot
from lvt.stages.common import run_stage, stage_parser


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    with atomic_path(args.out) as tmp:
        save_per_step_plot(args.frame_scores, tmp)


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--frame-scores", type=Path, required=True,
                        help="the frame_scores stage's JSON (per-step PSNR and SSIM)")
    parser.add_output("--out", help="figure (.svg or .png)")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
