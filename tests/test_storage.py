"""How big the preprocessing intermediates of the paper-size presets get on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_config import merged

from lvt import config as lvt_config
from lvt.data.dataset import FrameShardWriter
from lvt.data.sources import SourceRow, shard_rows

KINETICS_TRAIN_CLIPS = 392_000
"""Training rows of Kinetics-600's official CSV (docs/datasets.md, Kinetics-600)."""
KINETICS_FRAMES = 300
"""Native-rate frames of a 10 s clip at up to 30 fps."""
SHARD_BOUND = 10e9
"""Bytes a temporary frames shard may take: a manageable file for one job and its disk."""


def test_kinetics_preset_keeps_each_frames_shard_under_the_bound(tmp_path: Path) -> None:
    config = lvt_config.validate(merged("kinetics600"))
    shards, size = config["preprocess"]["shards"], config["preprocess"]["size"]
    rows = [SourceRow(f"clip{index}", "", "train", 0.0, 10.0)
            for index in range(KINETICS_TRAIN_CLIPS)]
    largest = len(shard_rows(rows, "train", 0, shards))
    frames = np.zeros((KINETICS_FRAMES, size, size, 3), np.uint8)
    with FrameShardWriter(tmp_path / "shard.h5", size) as writer:
        for row in rows[:2]:
            writer.add(row, frames, 30.0)
    bytes_per_clip = (tmp_path / "shard.h5").stat().st_size / 2
    assert largest * bytes_per_clip < SHARD_BOUND, (
        f"preprocess.shards = {shards}: the largest shard holds {largest} clips, "
        f"{largest * bytes_per_clip / 1e9:.0f} GB"
    )
