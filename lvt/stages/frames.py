"""Stage: decode every trimmed clip of a shard into square frames (resampled, cropped, resized).

Only the frames of each row's window [start, end) are kept (a clip also holds frames around it,
see lvt.data.clips). Writes a frame shard (lvt.data.dataset.FrameShardWriter): one uint8
(T, H, W, 3) dataset per decoded video, with its frame rate and the size of its source frames
(a clip keeps them), and the clips manifest's rows with the status of this stage. Each frame
is its central square resized to preprocess.size (see lvt.data.frames); a clip that cannot be
decoded is recorded as `failed` and does not stop the job.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

import av

from lvt.atomic import require_free_space
from lvt.data.clips import clip_path, clips_manifest
from lvt.data.dataset import FrameShardWriter
from lvt.data.frames import expected_frames, read_frames
from lvt.data.sources import read_manifest
from lvt.data.video_io import av_error_message, open_video
from lvt.errors import InputError
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Decode the clips in --clips into --out (settings: preprocess.fps, preprocess.size)."""
    fps, size = settings["preprocess"]["fps"], settings["preprocess"]["size"]
    rows = read_manifest(clips_manifest(args.clips))
    frames = sum(expected_frames(clip_path(args.clips, row.video_id), row.end - row.start, fps)
                 for row in rows if row.status == "ok")
    require_free_space(args.out, frames * size * size * 3,
                       f"about {frames} frames of {size}x{size}")
    decoded = 0
    with FrameShardWriter(args.out, size) as shard:
        for row in rows:
            if row.status != "ok":
                shard.add(row)
                continue
            clip = clip_path(args.clips, row.video_id)
            try:
                frames, frame_rate = read_frames(clip, fps, size, window=(row.start, row.end))
                source_size = frame_size(clip)
            except InputError as error:
                log.warning("%s", error)
                reason = str(error).removeprefix(f"{clip}: ")
                shard.add(row.with_status("failed", f"frames: {reason}"))
                continue
            shard.add(row, frames, frame_rate, source_size)
            decoded += 1
    log.info("%s: decoded %d of %d clips", args.clips, decoded, len(rows))


def frame_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The (width, height) of a video's frames as its stream stores them, read from its headers.

    Raises InputError naming the file if it cannot be opened.
    """
    try:
        with open_video(path) as (_, stream):
            return stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"{path}: cannot open the video ({av_error_message(error)})") from error


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--clips", required=True, help="clips folder written by lvt.stages.trim")
    parser.add_output("--out", help="frame shard to write (.h5)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
