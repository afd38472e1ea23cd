"""Stage: write the built-in synthetic demo videos and their source manifest."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from lvt.data.sources import write_manifest
from lvt.data.synthetic import SyntheticVideos, write_synthetic_videos
from lvt.stages.common import run_stage, stage_parser


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Write the videos into --out-dir and the manifest to --manifest (settings: source)."""
    videos = SyntheticVideos(**settings["source"]["synthetic"])
    rows = write_synthetic_videos(args.out_dir, videos)
    write_manifest(args.manifest, rows)


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_output("--out-dir", help="folder for the .mp4 files")
    parser.add_output("--manifest", help="source manifest to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
