"""Pack the frame shards of one split into the split's dataset (lvt.data.dataset).

The frames jobs have already cut each frame's central square and resized it (cropping before
resizing, as the reference did); packing checks the shards' frame size and writes their usable
videos, each with its own frame rate and source frame size. The split's `fps` attribute is the
most common rate. Videos are written sorted by video_id, so the result does not depend on
sharding.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np

from lvt.atomic import require_free_space
from lvt.data.dataset import FrameShard, VideoArraysWriter, dataset_video_id
from lvt.data.sources import SourceRow
from lvt.errors import InputError

log = logging.getLogger(__name__)


def pack_split(
    paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], size: int, source: str
) -> list[SourceRow]:
    """Pack the `ok` videos of the frame shards at `paths` into the dataset `out`.

    `size` is the side the frames must have (preprocess.size), `source` the source kind recorded
    in the file. Returns every row of the split sorted by video_id with its final status, for the
    split's report. Raises InputError if a shard's frames have another size, a video is in two
    shards, or no video is usable.
    """
    names = ", ".join(map(str, paths))
    with ExitStack() as stack:
        shards = [stack.enter_context(FrameShard(path)) for path in paths]
        for shard in shards:
            if shard.size != size:
                raise InputError(
                    f"{shard.path}: frames of side {shard.size}, preprocess.size is {size}; "
                    "rerun the frames stage"
                )
        owner = {row.video_id: shard for shard in shards for row in shard.rows}
        rows = sorted((row for shard in shards for row in shard.rows), key=lambda r: r.video_id)
        if len(owner) != len(rows):
            raise InputError(f"{names}: a video appears in more than one shard")
        usable = [row for row in rows if row.status == "ok"]
        if not usable:
            raise InputError(f"{names}: no usable video left ({_summary(rows)})")
        attrs: dict[str, Any] = {"size": size, "source": source}
        splits = {row.split for row in rows}
        if len(splits) == 1:
            attrs["split"] = splits.pop()
        _write(out, usable, owner, size, attrs)
    return rows


def _write(
    out: str | os.PathLike[str],
    usable: Sequence[SourceRow],
    owner: Mapping[str, FrameShard],
    size: int,
    attrs: dict[str, Any],
) -> None:
    """Write the videos of the `usable` rows, read from the shard `owner` maps each to."""
    frames = sum(owner[row.video_id].frame_count(row.video_id) for row in usable)
    require_free_space(out, frames * size * size * 3, f"{frames} frames of {size}x{size}")
    rates = []
    with VideoArraysWriter(out, "frames", np.uint8, attrs, (size, size, 3)) as writer:
        for row in usable:
            shard = owner[row.video_id]
            video, fps = shard.frames(row.video_id)
            writer.add(dataset_video_id(row), video, fps=fps,
                       source_size=shard.source_size(row.video_id))
            rates.append(round(fps, 3))
        writer.attrs["fps"] = _common_rate(rates)


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
