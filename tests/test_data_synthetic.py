"""The synthetic demo videos: real, decodable H.264 that depends only on the seed."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from lvt.data.synthetic import render_video, write_synthetic_videos
from lvt.data.video_io import probe_video


def decode(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def synthesize(out_dir: Path, seed: int = 0, **overrides) -> list:
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
        seed=seed,
    )
    return write_synthetic_videos(out_dir, **(options | overrides))


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
    rendered = render_video(5, "train", 0, len(decoded), 30, 64, 48, 3)
    expected = np.stack([
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        .to_ndarray(format="rgb24")
        for rgb in rendered
    ])
    assert np.array_equal(decoded, expected)
