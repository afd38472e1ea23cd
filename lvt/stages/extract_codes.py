"""Stage: encode every frame of every video of a split into VQ-VAE codes (HDF5, uint16).

The reference encoded only the first 16 frames of each video: its `CodesExtractor` sees what the
test mapper reads, `N_FRAMES_PER_VIDEO_TEST: 16` frames in
https://github.com/rakhimovv/lvt/blob/0899c21/configs/vqvae/PR-DVQVAE2.yaml. All frames are
kept here, with the same video index and ids as the frame dataset. The encoder sees one frame at
a time, so the split's frames are encoded as one run, in full batches across video boundaries
(a BAIR video's 30 frames never fill one). Each batch is written as it is done: a killed job
resumes from its first unfinished batch (lvt.data.progress).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import lvt
from lvt.checkpoints import file_sha256, load_model
from lvt.data.dataset import (
    CHUNK_ITEMS,
    OFFSETS,
    VIDEO_IDS,
    VideoArrays,
    copy_video_metadata,
)
from lvt.data.progress import BatchedOutput, file_stamp, preallocate
from lvt.devices import select_device
from lvt.inference import encode_frames
from lvt.stages.common import add_threads_option, run_stage, stage_parser

log = logging.getLogger("lvt.stages.extract_codes")

BATCH_FRAMES = 256


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    device = select_device("auto", args.threads)
    vqvae, config = load_model(args.model, "vqvae", map_location=device)
    vqvae.eval()
    frames = VideoArrays(args.dataset, "frames")
    vqvae_sha256 = file_sha256(args.model)
    # the attributes and index of a VideoArraysWriter file, the codes' shape asked of the encoder
    attrs = {**frames.attrs, "vqvae_sha256": vqvae_sha256, "vqvae": str(args.model),
             "lvt_version": lvt.__version__}
    blank = np.zeros((1, *frames.item_shape), dtype=np.uint8)
    item_shape = encode_frames(vqvae, blank, device).shape[1:]
    total, step = frames.num_items, args.batch_frames

    def lay_out(file: h5py.File) -> None:
        file.attrs.update(attrs)
        preallocate(file, "codes", (total, *item_shape), np.uint16, CHUNK_ITEMS)
        file.create_dataset(OFFSETS, data=frames.offsets.astype(np.int64))
        file.create_dataset(VIDEO_IDS, data=frames.video_ids, dtype=h5py.string_dtype("utf-8"))
        copy_video_metadata(frames, file)

    made_from = {"vqvae_sha256": vqvae_sha256, "vqvae": str(args.model),
                 "dataset": file_stamp(args.dataset), "batch_frames": step}
    with BatchedOutput(args.out, made_from, -(-total // step), lay_out) as output:
        for start in range(output.done * step, total, step):
            batch = frames.items(np.arange(start, min(start + step, total)))
            output.write(start, {"codes": encode_frames(vqvae, batch, device).astype(np.uint16)})
    log.info("encoded %d frames of %d videos into %s (%d codebooks of %d codes)",
             total, frames.num_videos, args.out, config.codebooks, config.codebook_size)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def cli() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="trained VQ-VAE")
    parser.add_argument("--dataset", type=Path, required=True, help="frames of one split (HDF5)")
    parser.add_output("--out", help="codes of that split (HDF5)")
    parser.add_argument("--batch-frames", type=positive_int, default=BATCH_FRAMES,
                        help="frames encoded at once (a batch may span several videos)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
