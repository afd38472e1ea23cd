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
from collections.abc import Sequence
from typing import Any

from lvt.data.clips import clip_path, clips_manifest
from lvt.data.frames import write_frame_shard
from lvt.data.sources import read_manifest
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Decode the clips in --clips into --out (settings: preprocess.fps, preprocess.size)."""
    rows = read_manifest(clips_manifest(args.clips))
    clips = [(row, clip_path(args.clips, row.video_id)) for row in rows]
    recorded = write_frame_shard(args.out, clips, settings["preprocess"]["fps"],
                                 settings["preprocess"]["size"])
    decoded = sum(row.status == "ok" for row in recorded)
    log.info("%s: decoded %d of %d clips", args.clips, decoded, len(rows))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--clips", required=True, help="clips folder written by lvt.stages.trim")
    parser.add_output("--out", help="frame shard to write (.h5)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
