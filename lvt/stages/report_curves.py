"""Stage: training curves of both models as SVG plots for the report.

Writes vqvae_loss.svg, vqvae_psnr.svg, vqvae_perplexity.svg and transformer_bits_per_code.svg.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lvt.atomic import atomic_path
from lvt.report import read_metrics, save_plot, transformer_plots, vqvae_plots
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger("lvt.stages.report_curves")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path, make_plots in ((args.vqvae_metrics, vqvae_plots),
                             (args.transformer_metrics, transformer_plots)):
        metrics = read_metrics(path)
        for name, plot in make_plots(metrics, path).items():
            with atomic_path(args.out_dir / f"{name}.svg") as tmp:
                save_plot(metrics["step"], plot, tmp)
            log.info("wrote %s", args.out_dir / f"{name}.svg")


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--vqvae-metrics", type=Path, required=True, help="VQ-VAE metrics CSV")
    parser.add_argument("--transformer-metrics", type=Path, required=True,
                        help="transformer metrics CSV")
    parser.add_output("--out-dir", help="folder for the SVG figures")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
