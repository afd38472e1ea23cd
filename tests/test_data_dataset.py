"""HDF5 video arrays and frame shards: round trip, chunking, atomic writes, clear errors."""

from __future__ import annotations

import multiprocessing
import pickle

import h5py
import numpy as np
import pytest

import lvt
from lvt.data.dataset import (
    CHUNK_ITEMS,
    FrameShard,
    FrameShardWriter,
    VideoArrays,
    VideoArraysWriter,
    copy_video_metadata,
    dataset_video_id,
)
from lvt.data.sources import SourceRow
from lvt.errors import InputError


@pytest.fixture
def videos() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        f"video-{i}@0-1s": rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8)
        for i, length in enumerate([5, 1, 7])
    }


@pytest.fixture
def written(tmp_path, videos):
    path = tmp_path / "train.h5"
    with VideoArraysWriter(path, attrs={"fps": 30.0, "size": 8}) as writer:
        for video_id, frames in videos.items():
            writer.add(video_id, frames)
    return path


def test_round_trip(written, videos):
    arrays = VideoArrays(written)
    assert arrays.video_ids == list(videos)
    assert arrays.num_videos == 3 and arrays.num_items == 13
    assert list(arrays.lengths) == [5, 1, 7]
    assert arrays.item_shape == (8, 8, 3) and arrays.dtype == np.uint8
    assert arrays.attrs == {"fps": 30.0, "size": 8, "lvt_version": lvt.__version__}
    everything = np.concatenate(list(videos.values()))
    for index, frames in enumerate(videos.values()):
        assert np.array_equal(arrays.video(index), frames)
    assert np.array_equal(arrays.clip(2, 3, 4), videos["video-2@0-1s"][3:7])
    assert np.array_equal(arrays.items([12, 0, 5, 0]), everything[[12, 0, 5, 0]])
    assert np.array_equal(arrays.items(np.arange(4, 9)), everything[4:9])
    # runs and scattered indices, out of order and repeated, read as slices
    mixed = [11, 3, 4, 5, 12, 0, 4, 9, 8, 7]
    assert np.array_equal(arrays.items(mixed), everything[mixed])
    assert arrays.items([]).shape == (0, 8, 8, 3)
    with pytest.raises(IndexError):
        arrays.clip(0, 2, 4)
    with pytest.raises(IndexError):
        arrays.items([13])


def test_chunks_of_a_clip_and_resizable(written):
    with h5py.File(written) as file:
        assert file["frames"].chunks == (CHUNK_ITEMS, 8, 8, 3)
        assert file["frames"].maxshape == (None, 8, 8, 3)
        assert file["offsets"].dtype == np.int64
        assert list(file["offsets"]) == [0, 5, 6, 13]


def test_codes_with_another_name_dtype_and_inferred_item_shape(tmp_path):
    codes = np.arange(3 * 4 * 2 * 2, dtype=np.uint16).reshape(3, 4, 2, 2) * 100
    with VideoArraysWriter(tmp_path / "codes.h5", "codes", np.uint16, {"vqvae": "m.pt"}) as writer:
        writer.add("a@0-1s", codes)
    arrays = VideoArrays(tmp_path / "codes.h5", "codes")
    assert arrays.dtype == np.uint16 and arrays.item_shape == (4, 2, 2)
    assert np.array_equal(arrays.video(0), codes)
    assert arrays.attrs["vqvae"] == "m.pt"


def test_an_exception_inside_the_writer_leaves_no_file(tmp_path, videos):
    path = tmp_path / "broken.h5"
    with pytest.raises(RuntimeError), VideoArraysWriter(path) as writer:
        writer.add("first", videos["video-0@0-1s"])
        raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match="dtype"), VideoArraysWriter(path) as writer:
        writer.add("floats", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"), VideoArraysWriter(path) as writer:
        writer.add("first", videos["video-0@0-1s"])
        writer.add("second", np.zeros((2, 4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_reading_bad_files_names_them(tmp_path, written):
    with pytest.raises(InputError, match=f"{tmp_path / 'missing.h5'}: no such file"):
        VideoArrays(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(InputError, match=f"{text}: not an HDF5 file"):
        VideoArrays(text)
    with pytest.raises(InputError, match=r"missing dataset\(s\) \['codes'\]"):
        VideoArrays(written, "codes")


def _first_frame_sum(arrays: VideoArrays, index: int) -> int:
    return int(arrays.video(index).sum())


def test_reader_works_across_processes(written, videos):
    arrays = VideoArrays(written)
    expected = [int(frames.sum()) for frames in videos.values()]
    assert _first_frame_sum(arrays, 0) == expected[0]
    assert pickle.loads(pickle.dumps(arrays)).video(2).sum() == expected[2]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        sums = pool.starmap(_first_frame_sum, [(arrays, i) for i in range(3)])
    assert sums == expected


def test_frame_shard_round_trip(tmp_path):
    ok = SourceRow("clip-a", "a.mp4", "train", 0.5, 2.0)
    failed = SourceRow("clip-b", "b.mp4", "train", 0.0, 1.0).with_status("failed", "bad\tdata\n")
    frames = np.ones((3, 4, 4, 3), np.uint8)
    with FrameShardWriter(tmp_path / "shard.h5", 4) as shard:
        shard.add(ok, frames, 30.0)
        shard.add(failed)
        with pytest.raises(ValueError):
            shard.add(failed, frames, 30.0)
        with pytest.raises(ValueError, match="expected"):
            shard.add(ok, np.ones((3, 4, 6, 3), np.uint8), 30.0)
    with FrameShard(tmp_path / "shard.h5") as shard:
        assert shard.rows == [ok, failed] and shard.size == 4
        assert failed.reason == "bad data"
        read, fps = shard.frames("clip-a")
        assert np.array_equal(read, frames) and fps == 30.0
        with pytest.raises(InputError, match="no frames for video clip-b"):
            shard.frames("clip-b")
    assert dataset_video_id(ok) == "clip-a@0.5-2s"


def test_each_video_keeps_its_own_frame_rate_and_source_size(tmp_path, videos):
    rates, sizes = [30.0, 29.97, 2.3], [(1920, 1080), (640, 480), (320, 240)]
    path = tmp_path / "mixed.h5"
    with VideoArraysWriter(path, attrs={"fps": 30.0}) as writer:
        for (video_id, frames), fps, size in zip(videos.items(), rates, sizes, strict=True):
            writer.add(video_id, frames, fps=fps, source_size=size)
    arrays = VideoArrays(path)
    assert arrays.per_video_metadata
    assert arrays.fps.dtype == np.float64 and list(arrays.fps) == rates
    assert arrays.source_size.tolist() == [list(size) for size in sizes]
    with h5py.File(tmp_path / "codes.h5", "w") as codes:
        copy_video_metadata(arrays, codes)
    with h5py.File(tmp_path / "codes.h5") as codes:
        assert list(codes["fps"][:]) == rates and codes["source_size"].shape == (3, 2)


def test_files_without_per_video_arrays_read_the_split_rate(written, tmp_path):
    arrays = VideoArrays(written)
    assert not arrays.per_video_metadata
    assert list(arrays.fps) == [30.0, 30.0, 30.0]
    assert arrays.source_size.tolist() == [[0, 0]] * 3
    with h5py.File(tmp_path / "codes.h5", "w") as codes:
        copy_video_metadata(arrays, codes)
    with h5py.File(tmp_path / "codes.h5") as codes:
        assert "fps" not in codes and "source_size" not in codes


def test_per_video_arrays_are_all_or_nothing(tmp_path, videos, written):
    (first, frames), (second, more) = list(videos.items())[:2]
    with pytest.raises(ValueError, match="every video or for none"), \
            VideoArraysWriter(tmp_path / "a.h5") as writer:
        writer.add(first, frames, fps=25.0, source_size=(64, 48))
        writer.add(second, more)
    with pytest.raises(ValueError, match="every video or for none"), \
            VideoArraysWriter(tmp_path / "b.h5") as writer:
        writer.add(first, frames, fps=25.0)
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
    with h5py.File(written, "a") as file:
        file.create_dataset("fps", data=[30.0, 25.0])
    with pytest.raises(InputError, match=f"{written}: has only one of the datasets"):
        VideoArrays(written)
    with h5py.File(written, "a") as file:
        file.create_dataset("source_size", data=np.zeros((2, 2), np.int32))
    with pytest.raises(InputError, match=rf"{written}: fps of shape \(2,\).*expected \(3,\)"):
        VideoArrays(written)


def test_frame_shard_keeps_the_source_size(tmp_path):
    row = SourceRow("clip-a", "a.mp4", "train", 0.0, 1.0)
    with FrameShardWriter(tmp_path / "shard.h5", 4) as shard:
        shard.add(row, np.ones((2, 4, 4, 3), np.uint8), 12.5, (720, 1280))
    with FrameShard(tmp_path / "shard.h5") as shard:
        assert shard.frames("clip-a")[1] == 12.5
        assert shard.source_size("clip-a") == (720, 1280)
