"""The synthetic demo videos: real, decodable H.264 that depends only on the seed."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import synthetic_videos

from lvt.data.synthetic import SyntheticVideos, render_video, write_synthetic_videos
from lvt.data.video_io import probe_video


def decode(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def small(**overrides) -> SyntheticVideos:
    """Three 1 s videos of 64x48 at 30 fps, the schema's shape sizes and speeds."""
    options = dict(
        train_videos=2,
        test_videos=1,
        seconds=1.0,
        window_start=0.25,
        window_seconds=0.5,
        fps=30,
        width=64,
        height=48,
        shapes=3,
        seed=0,
    )
    return synthetic_videos(**(options | overrides))


def synthesize(out_dir: Path, seed: int = 0, **overrides) -> list:
    return write_synthetic_videos(out_dir, small(seed=seed, **overrides))


def test_videos_are_real_h264_with_the_asked_size_rate_and_length(small_videos):
    assert [row.split for row in small_videos] == ["train", "train", "test"]
    for row in small_videos:
        with av.open(row.path) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            frames = list(container.decode(stream))
        assert len(frames) == 60
        assert (frames[0].width, frames[0].height) == (64, 48)
        keyframes = [i for i, frame in enumerate(frames) if frame.key_frame]
        assert keyframes == [0, 30]
        info = probe_video(row.path)
        assert info.fps == 30 and info.duration == pytest.approx(2.0)
        assert (row.start, row.end, row.status) == (0.5, 1.5, "ok")


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path):
    first = synthesize(tmp_path / "a", seed=3)
    again = synthesize(tmp_path / "b", seed=3)
    other = synthesize(tmp_path / "c", seed=4)
    assert [r.video_id for r in first] == [r.video_id for r in again]
    for a, b, c in zip(first, again, other, strict=True):
        pixels = decode(a.path)
        assert np.array_equal(pixels, decode(b.path))
        assert not np.array_equal(pixels, decode(c.path))
    assert not np.array_equal(decode(first[0].path), decode(first[1].path))


def test_motion_is_moderate_and_the_background_dark(tmp_path):
    frames = decode(synthesize(tmp_path, train_videos=1, test_videos=1)[0].path).astype(int)
    step = np.abs(np.diff(frames, axis=0)).mean()
    assert 0 < step < 10
    assert np.median(frames) < 60
    assert frames.max() > 200


def test_window_is_clamped_to_the_video(tmp_path):
    rows = synthesize(tmp_path, window_start=0.5, window_seconds=5.0)
    assert all((row.start, row.end) == (0.5, 1.0) for row in rows)
    with pytest.raises(ValueError, match="window"):
        synthesize(tmp_path, window_start=2.0)
    with pytest.raises(ValueError, match="even"):
        synthesize(tmp_path, width=63)


def test_videos_are_lossless(tmp_path):
    """Decoding gives back the rendered frames as yuv420p holds them, bit for bit: no codec noise
    makes a still background flicker (at CRF 18 about a quarter of its pixels did)."""
    row = synthesize(tmp_path, train_videos=1, test_videos=0, seed=5)[0]
    decoded = decode(row.path)
    rendered = list(render_video(small(seed=5), "train", 0))
    assert len(rendered) == len(decoded)
    expected = np.stack([
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        .to_ndarray(format="rgb24")
        for rgb in rendered
    ])
    assert np.array_equal(decoded, expected)


def frames_digest(videos: SyntheticVideos, split: str) -> str:
    digest = hashlib.sha256()
    for frame in render_video(videos, split, 0):
        digest.update(frame.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(("videos", "split", "expected"), [
    (small(seed=3), "train", "30b79a1b27603288684ae2d20106415a45549948c4f563b93ac3e4193732a9bf"),
    (small(seed=3), "test", "cfd5fc3471e86aa65bd7304ec6a94e81b944c3f668c3d1335839198db65f944a"),
    (small(seed=11, seconds=1.5, fps=25, width=96, height=80, shapes=5), "train",
     "0a4ecfbd04ccce5318cd199329b1d88e9b18cfdc233349a04202d8330630a81d"),
])
def test_default_shape_sizes_and_speeds_keep_the_demo_frames(videos, split, expected):
    """The frames the videos held when shape sizes and speeds were fixed constants, before they
    became settings with those values as the schema's defaults (the encoder, unchanged, turns
    the same frames into the same bytes)."""
    assert videos.shape_size == (0.05, 0.125) and videos.speed == (0.3, 0.8)
    assert frames_digest(videos, split) == expected


def test_the_same_options_write_the_same_bytes(tmp_path):
    """The encoder is reproducible, so with the frames pinned above the files stay byte for byte
    those written before shape sizes and speeds became settings."""
    first, again = synthesize(tmp_path / "a", seed=3), synthesize(tmp_path / "b", seed=3)
    for a, b in zip(first, again, strict=True):
        assert Path(a.path).read_bytes() == Path(b.path).read_bytes()


def test_shape_size_and_speed_change_the_shapes():
    base = small(train_videos=1, test_videos=0, shapes=1)

    def frames(videos: SyntheticVideos) -> np.ndarray:
        return np.stack(list(render_video(videos, "train", 0))).astype(int)

    background = frames(replace(base, shapes=0))

    def covered(videos: SyntheticVideos) -> int:
        return int(np.any(frames(videos) != background, axis=-1).sum())

    assert covered(replace(base, shape_size=(0.2, 0.2))) > 2 * covered(base)
    assert np.abs(np.diff(frames(base), axis=0)).max() > 0
    assert np.abs(np.diff(frames(replace(base, speed=(0.0, 0.0))), axis=0)).max() == 0
