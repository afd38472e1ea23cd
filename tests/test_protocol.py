"""The prediction protocol: jobs, shards, sharded sampling, the shard files, the copy-last-frame
baseline (lvt.protocol)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER, protocol

from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.errors import InputError
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.protocol import (
    copy_last_frame,
    lay_out_protocol_samples,
    protocol_videos,
    read_protocol_samples,
    sample_shard,
    shard_batches,
)

RNG = np.random.default_rng(0)


def test_copy_last_frame_repeats_the_last_priming_frame() -> None:
    clips = RNG.integers(0, 256, (2, 5, 4, 4, 3), dtype=np.uint8)
    copied = copy_last_frame(clips, 2)
    np.testing.assert_array_equal(copied[:, :2], clips[:, :2])
    for step in range(2, 5):
        np.testing.assert_array_equal(copied[:, step], clips[:, 1])
    assert copied.dtype == np.uint8 and not np.array_equal(clips[:, 2], clips[:, 1])


def test_jobs_cover_videos_samples_and_trials() -> None:
    jobs = protocol().jobs()
    assert jobs.shape == (2 * 3 * 2, 3)
    assert {tuple(row) for row in jobs} == {(t, v, s) for t in range(2) for v in (0, 2)
                                             for s in range(3)}
    assert protocol().record("a", "b")["summary"] == "2 videos × 3 samples × 2 trials"


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_shards_are_contiguous_runs_of_whole_batches(shards: int) -> None:
    batches = [b for shard in range(shards) for b in shard_batches(protocol(), shards, shard)]
    assert [b[0] for b in batches] == [0, 1, 2]
    assert [(start, end) for _, start, end in batches] == [(0, 4), (4, 8), (8, 12)]


@pytest.fixture(scope="module")
def test_codes(tmp_path_factory: pytest.TempPathFactory) -> VideoArrays:
    """Codes of three test videos (the second too short for 4-frame clips) on a 4x4 grid."""
    path = tmp_path_factory.mktemp("codes") / "test.h5"
    rng = np.random.default_rng(1)
    with VideoArraysWriter(path, "codes", np.uint16) as writer:
        for name, length in (("a", 5), ("short", 3), ("b", 4)):
            writer.add(name, rng.integers(0, 8, (length, 2, 4, 4)).astype(np.uint16))
    return VideoArrays(path, "codes")


def tiny_transformer() -> LatentVideoTransformer:
    torch.manual_seed(0)
    config = TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 1, 1),
                               encoder_block=(1, 4, 4), decoder_block=(1, 4, 4))
    return LatentVideoTransformer(config).eval()


def test_protocol_videos_takes_long_enough_ones_and_refuses_too_few(test_codes) -> None:
    assert protocol_videos(test_codes, 4, None) == [0, 2]
    assert protocol_videos(test_codes, 4, 2) == [0, 2]
    with pytest.raises(InputError, match="fvd.videos"):
        protocol_videos(test_codes, 4, 3)


def test_sampling_does_not_depend_on_the_shard_count(test_codes, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    try:
        check_shard_independence(test_codes, tmp_path)
    finally:
        torch.set_num_threads(threads)


def check_shard_independence(test_codes: VideoArrays, tmp_path: Path) -> None:
    model, cpu = tiny_transformer(), torch.device("cpu")
    setting = protocol(videos=(0, 2))
    assert sample_shard(model, test_codes, setting, 1, 0, cpu, tmp_path / "whole.h5", {}) == 12
    whole = read_protocol_samples([tmp_path / "whole.h5"], setting)
    assert whole.codes.shape == (12, 4, 2, 4, 4) and whole.codes.dtype == np.uint16
    np.testing.assert_array_equal(whole.jobs, setting.jobs())
    # priming frames are the ground truth codes; samples of one video differ
    for clip, (_, video, _) in zip(whole.codes, whole.jobs, strict=True):
        np.testing.assert_array_equal(clip[:1], test_codes.clip(int(video), 0, 1))
    assert not np.array_equal(whole.codes[0], whole.codes[1])

    paths = []
    for shard in (1, 0):  # written and read in any order
        paths.append(tmp_path / f"shard{shard}.h5")
        sample_shard(model, test_codes, setting, 2, shard, cpu, paths[-1], {})
    gathered = read_protocol_samples(paths, setting)
    np.testing.assert_array_equal(gathered.codes, whole.codes)
    np.testing.assert_array_equal(gathered.jobs, whole.jobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard0.h5", "shard1.h5", "whole.h5"]

    with pytest.raises(InputError, match="exactly once"):
        read_protocol_samples(paths[:1], setting)
    with pytest.raises(InputError, match="another protocol"):
        read_protocol_samples(paths, protocol(videos=(0, 2), seed=8))

    # a Kinetics-600-sized protocol (50,000 videos) is recorded in full
    large = protocol(videos=tuple(range(50_000)))
    with h5py.File(tmp_path / "large.h5", "w") as file:
        lay_out_protocol_samples(file, large, whole.jobs[:0], test_codes.item_shape)
    with pytest.raises(InputError, match="exactly once"):
        read_protocol_samples([tmp_path / "large.h5"], large)
