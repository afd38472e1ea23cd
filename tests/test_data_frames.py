"""Decoding: frame-rate resampling rule, resize of the short side, center crop."""

from __future__ import annotations

import av
import numpy as np
import pytest

from lvt.data.frames import INTERPOLATION, center_crop, native_fps, read_frames
from lvt.data.synthetic import write_synthetic_videos
from lvt.errors import InputError


def test_native_rate_and_short_side_resize(small_videos):
    path = small_videos[0].path
    frames = read_frames(path, None, 24)
    assert frames.shape == (60, 24, 32, 3) and frames.dtype == np.uint8
    assert read_frames(path, None, 20).shape == (60, 20, 27, 3)
    assert read_frames(path, None, 96).shape == (60, 96, 128, 3)


def test_portrait_video_resizes_its_width(tmp_path):
    (row,) = write_synthetic_videos(
        tmp_path, 1, 0, 0.5, 0.0, 0.5, fps=30, width=32, height=48, shapes=1, seed=0
    )
    assert read_frames(row.path, None, 16).shape == (15, 24, 16, 3)


def test_resampling_picks_the_last_frame_at_or_before_each_time(small_videos):
    path = small_videos[0].path
    native = read_frames(path, None, 24)
    assert np.array_equal(read_frames(path, 10, 24), native[::3])
    doubled = read_frames(path, 60, 24)
    assert len(doubled) == 120
    assert np.array_equal(doubled[::2], native) and np.array_equal(doubled[1::2], native)
    twelve = read_frames(path, 12, 24)
    assert np.array_equal(twelve, native[[int(k * 2.5) for k in range(24)]])


def test_a_window_keeps_the_frames_shown_in_it(small_videos):
    path = small_videos[0].path
    native = read_frames(path, None, 24)
    assert np.array_equal(read_frames(path, None, 24, window=(0.5, 1.0)), native[15:30])
    assert np.array_equal(read_frames(path, None, 24, window=(0.51, 1.01)), native[16:31])
    assert np.array_equal(read_frames(path, 10, 24, window=(0.5, 1.5)), native[15:45:3])
    with pytest.raises(InputError, match="no decodable video frame"):
        read_frames(path, None, 24, window=(2.5, 3.0))


def test_native_fps(small_videos, tmp_path):
    assert native_fps(small_videos[0].path) == 30.0
    with pytest.raises(InputError, match="not a readable video"):
        native_fps(tmp_path / "missing.mp4")


def test_resized_frames_keep_the_content(small_videos):
    full = read_frames(small_videos[0].path, None, 48).astype(float)
    half = read_frames(small_videos[0].path, None, 24).astype(float)
    pooled = full.reshape(60, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(pooled - half).mean() < 4


def test_planar_rgb_path_gives_the_packed_rgb_pixels(small_videos):
    """The resize goes through swscale's planar RGB output for speed; same bytes as rgb24."""
    with av.open(small_videos[0].path) as container:
        packed = np.stack([
            frame.reformat(32, 24, format="rgb24", interpolation=INTERPOLATION).to_ndarray()
            for frame in container.decode(video=0)
        ])
    assert np.array_equal(read_frames(small_videos[0].path, None, 24), packed)


def test_undecodable_files_name_the_file(tmp_path):
    text = tmp_path / "text.mp4"
    text.write_text("hello\n")
    with pytest.raises(InputError, match=f"{text}: cannot decode"):
        read_frames(text, None, 16)
    with pytest.raises(InputError, match="missing.mp4"):
        read_frames(tmp_path / "missing.mp4", 10, 16)


def test_center_crop():
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    crop = center_crop(frames, 4)
    assert crop.shape == (2, 4, 4, 3)
    assert np.array_equal(crop, frames[:, 1:5, 2:6])
    assert np.array_equal(center_crop(frames, 6), frames[:, :, 1:7])
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(frames, 7)
