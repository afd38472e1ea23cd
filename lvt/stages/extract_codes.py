"""Stage: encode every frame of every video of a split into VQ-VAE codes (HDF5, uint16).

The reference encoded only the first 16 frames of each video (lvt-method.md §9.3); all frames
are kept here, with the same video index and ids as the frame dataset.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lvt.checkpoints import file_sha256, load_model
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.generate import encode_frames
from lvt.stages.common import add_threads_option, run_stage, select_device, stage_parser

log = logging.getLogger("lvt.stages.extract_codes")

BATCH_FRAMES = 256


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    device = select_device("auto", args.threads)
    vqvae, config = load_model(args.model, "vqvae", map_location=device)
    vqvae.eval()
    frames = VideoArrays(args.dataset, "frames")
    attrs = {**frames.attrs, "vqvae_sha256": file_sha256(args.model), "vqvae": str(args.model)}
    with VideoArraysWriter(args.out, "codes", np.uint16, attrs) as writer:
        for index, video_id in enumerate(frames.video_ids):
            video = frames.video(index)
            codes = np.concatenate([
                encode_frames(vqvae, video[start:start + BATCH_FRAMES], device)
                for start in range(0, len(video), BATCH_FRAMES)
            ])
            writer.add(video_id, codes.astype(np.uint16))
    log.info("encoded %d frames of %d videos into %s (%d codebooks of %d codes)",
             frames.num_items, frames.num_videos, args.out, config.codebooks, config.codebook_size)


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="trained VQ-VAE")
    parser.add_argument("--dataset", type=Path, required=True, help="frames of one split (HDF5)")
    parser.add_argument("--out", type=Path, required=True, help="codes of that split (HDF5)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
