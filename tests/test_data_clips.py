"""Trimming: frame-accurate windows, also between sparse keyframes; clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from lvt.data.clips import clip_path, ffmpeg_executable, trim
from lvt.data.synthetic import write_synthetic_videos
from lvt.errors import InputError


def decode(path: str | Path) -> tuple[np.ndarray, list[bool]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), [f.key_frame for f in frames]


@pytest.fixture(scope="module")
def sparse_keyframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 30 fps video whose only keyframes are at 0 s and 2 s."""
    (row,) = write_synthetic_videos(
        tmp_path_factory.mktemp("sparse"),
        train_videos=1,
        test_videos=0,
        seconds=3.0,
        window_start=0.0,
        window_seconds=3.0,
        fps=30,
        width=64,
        height=48,
        shapes=3,
        seed=1,
        gop=60,
    )
    return Path(row.path)


def test_ffmpeg_executable_runs():
    executable = ffmpeg_executable()
    assert os.access(executable, os.X_OK)


def test_trim_between_keyframes_is_frame_accurate(sparse_keyframes, tmp_path):
    source, keyframes = decode(sparse_keyframes)
    assert [i for i, key in enumerate(keyframes) if key] == [0, 60]
    target = clip_path(tmp_path, "clip")
    trim(sparse_keyframes, target, 0.5, 1.7)
    clip, _ = decode(target)
    assert len(clip) == 36
    errors = {
        offset: np.abs(clip.astype(int) - source[offset : offset + 36]).mean()
        for offset in range(12, 19)
    }
    assert min(errors, key=errors.get) == 15
    assert errors[15] < 3
    assert list(tmp_path.iterdir()) == [target]


def test_trim_failures_name_the_source_and_leave_nothing(sparse_keyframes, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(InputError, match=f"{text}: ffmpeg could not trim it: .*Invalid data"):
        trim(text, tmp_path / "out.mp4", 0.0, 1.0)
    with pytest.raises(InputError, match=f"{sparse_keyframes}: .*no video"):
        trim(sparse_keyframes, tmp_path / "out.mp4", 10.0, 11.0)
    with pytest.raises(InputError, match="empty window"):
        trim(sparse_keyframes, tmp_path / "out.mp4", 1.0, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]
