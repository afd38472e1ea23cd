"""Stage: pack the center-cropped frame shards of one split into the split's dataset.

The frames stage has already cut each frame's central square and resized it (cropping before
resizing, as the reference did); this stage checks the shards' frame size and packs them, with
each video's own frame rate and source frame size (lvt.data.dataset). The split's `fps`
attribute is the most common rate.

Videos are written sorted by video_id, so the result does not depend on sharding. The report
(--manifest) lists every video of the split with its final status and reason, including those
skipped when scanning and those that failed to trim or decode.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np

from lvt.atomic import require_free_space
from lvt.data.dataset import FrameShard, VideoArraysWriter, dataset_video_id
from lvt.data.sources import SourceRow, write_manifest
from lvt.errors import InputError
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Pack --frames into --out, report to --manifest (settings: source, preprocess)."""
    size = settings["preprocess"]["size"]
    with ExitStack() as stack:
        shards = [stack.enter_context(FrameShard(path)) for path in args.frames]
        for shard in shards:
            if shard.size != size:
                raise InputError(
                    f"{shard.path}: frames of side {shard.size}, preprocess.size is {size}; "
                    "rerun the frames stage"
                )
        owner = {row.video_id: shard for shard in shards for row in shard.rows}
        rows = sorted((row for shard in shards for row in shard.rows), key=lambda r: r.video_id)
        if len(owner) != len(rows):
            raise InputError(f"{', '.join(args.frames)}: a video appears in more than one shard")
        usable = [row for row in rows if row.status == "ok"]
        if not usable:
            raise InputError(f"{', '.join(args.frames)}: no usable video left ({_summary(rows)})")
        attrs = {"size": size, "source": settings["source"]["kind"]}
        splits = {row.split for row in rows}
        if len(splits) == 1:
            attrs["split"] = splits.pop()
        frames = sum(owner[row.video_id].frame_count(row.video_id) for row in usable)
        require_free_space(args.out, frames * size * size * 3,
                           f"{frames} frames of {size}x{size}")
        rates = []
        with VideoArraysWriter(args.out, "frames", np.uint8, attrs, (size, size, 3)) as writer:
            for row in usable:
                shard = owner[row.video_id]
                frames, fps = shard.frames(row.video_id)
                writer.add(dataset_video_id(row), frames, fps=fps,
                           source_size=shard.source_size(row.video_id))
                rates.append(round(fps, 3))
            writer.attrs["fps"] = _common_rate(rates)
    write_manifest(args.manifest, rows)
    log.info(
        "%s: %d videos packed; %s", args.out, len(usable), dict(Counter(r.status for r in rows))
    )


def _common_rate(rates: Sequence[float]) -> float:
    """The most common frame rate (resampled or native); warns when the videos differ."""
    counts = Counter(rates)
    if len(counts) > 1:
        log.warning("videos have different frame rates %s; each keeps its own, set preprocess.fps "
                    "to resample all to one", dict(counts))
    return counts.most_common(1)[0][0]


def _summary(rows: Sequence[SourceRow]) -> str:
    """Statuses and the first few reasons, for an error message."""
    if not rows:
        return "the shards list no video"
    reasons = "; ".join(f"{row.video_id}: {row.reason}" for row in rows[:3])
    return f"{len(rows)} videos, none ok: {reasons}"


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--frames", required=True, nargs="+", help="frame shards of one split")
    parser.add_output("--out", help="dataset to write (.h5)")
    parser.add_output("--manifest", help="report of the split to write (.tsv)")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
