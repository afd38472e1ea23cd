"""Trimming: clips that decode to exactly the window's frames, also between sparse keyframes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import synthetic_videos

from lvt.data import clips
from lvt.data.clips import Window, clip_path, trim, trim_many
from lvt.data.frames import read_frames
from lvt.data.synthetic import write_synthetic_videos
from lvt.data.video_io import ffmpeg_executable
from lvt.errors import InputError


def decode(path: str | Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def demux(path: str | Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [packet for packet in container.demux(video=0) if packet.size]


def rgb(frames: list[av.VideoFrame]) -> np.ndarray:
    return np.stack([frame.to_ndarray(format="rgb24") for frame in frames])


def window(frames: list[av.VideoFrame], start: float, end: float) -> list[av.VideoFrame]:
    """The decoded frames shown in [start, end) seconds (with a microsecond of tolerance)."""
    return [frame for frame in frames if start - 1e-6 <= frame.time < end - 1e-6]


@pytest.fixture(scope="module")
def sparse_keyframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 30 fps video whose only keyframes are at 0 s and 2 s."""
    (row,) = write_synthetic_videos(
        tmp_path_factory.mktemp("sparse"),
        synthetic_videos(
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
        ),
    )
    return Path(row.path)


def test_ffmpeg_executable_runs():
    executable = ffmpeg_executable()
    assert os.access(executable, os.X_OK)


def test_trim_between_keyframes_keeps_exactly_the_window(sparse_keyframes, tmp_path):
    source = decode(sparse_keyframes)
    assert [i for i, frame in enumerate(source) if frame.key_frame] == [0, 60]
    target = clip_path(tmp_path, "clip")
    trim(sparse_keyframes, target, 0.5, 1.7)
    assert list(tmp_path.iterdir()) == [target]
    kept = window(decode(target), 0.5, 1.7)
    assert len(kept) == 36 and not kept[0].key_frame, "a stream copy, not a re-encode"
    assert [frame.time for frame in kept] == [frame.time for frame in source[15:51]]
    assert np.array_equal(rgb(kept), rgb(source[15:51]))
    frames = read_frames(target, None, 24, window=(0.5, 1.7))[0]
    assert np.array_equal(frames, read_frames(sparse_keyframes, None, 24)[0][15:51])


@pytest.mark.parametrize(("start", "end"), [(0.0, 1.0), (1.5, 2.5), (2.0, 2.2), (2.5, 3.0)])
def test_windows_at_and_across_keyframes_and_at_the_ends(sparse_keyframes, tmp_path, start, end):
    trim(sparse_keyframes, tmp_path / "clip.mp4", start, end)
    frames = read_frames(tmp_path / "clip.mp4", None, 24, window=(start, end))[0]
    first, last = round(start * 30), round(end * 30)
    assert len(frames) == last - first
    assert np.array_equal(frames, read_frames(sparse_keyframes, None, 24)[0][first:last])


@pytest.mark.parametrize("fps", [25, 30000 / 1001])
def test_other_rates_and_windows_between_frames(tmp_path, fps):
    """Keyframes 2 s apart; the window's ends fall between frames."""
    (row,) = write_synthetic_videos(tmp_path / "src", synthetic_videos(
        train_videos=1, test_videos=0, seconds=4.0, window_start=0.0, window_seconds=4.0, fps=fps,
        width=64, height=48, shapes=2, seed=3, gop=50,
    ))
    start, end = 0.51, 3.31
    trim(row.path, tmp_path / "clip.mp4", start, end)
    expected = window(decode(row.path), start, end)
    kept = window(decode(tmp_path / "clip.mp4"), start, end)
    assert len(kept) == len(expected) == {25: 70, 30000 / 1001: 84}[fps]
    assert [frame.time for frame in kept] == [frame.time for frame in expected]
    assert np.array_equal(rgb(kept), rgb(expected))


def test_a_codec_mp4_cannot_hold_is_reencoded(tmp_path):
    source = tmp_path / "old.mkv"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("msmpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(50):
            image = np.full((48, 64, 3), index * 5, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    trim(source, tmp_path / "clip.mp4", 0.4, 1.2)
    clip = decode(tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert [round(frame.time * 25) for frame in clip] == list(range(10, 30))
    brightness = rgb(clip).astype(float).mean(axis=(1, 2, 3))
    expected = rgb(decode(source)[10:30]).astype(float).mean(axis=(1, 2, 3))
    assert np.abs(brightness - expected).max() < 1.5


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


def test_trim_many_cuts_a_batch_with_one_process_like_trim(sparse_keyframes, tmp_path, monkeypatch):
    """Good windows come out of the batch's one ffmpeg run, packet for packet what `trim` writes;
    only the window past the video's end and the empty one are cut alone, and fail alone."""
    out = tmp_path / "clips"
    out.mkdir()
    good = [(0.5, 1.7), (1.9, 2.4), (0.0, 3.0)]
    windows = [Window(sparse_keyframes, out / f"good{i}.mp4", *span) for i, span in enumerate(good)]
    windows.append(Window(sparse_keyframes, out / "late.mp4", 10.0, 11.0))
    windows.insert(1, Window(sparse_keyframes, out / "empty.mp4", 2.0, 1.0))
    alone = []
    monkeypatch.setattr(clips, "trim", lambda *args: alone.append(args) or trim(*args))
    errors = trim_many(windows)
    assert "empty window" in str(errors.pop(1))
    assert errors[:3] == [None] * 3 and "no video frame" in str(errors[3])
    assert [args[1].name for args in alone] == ["empty.mp4", "late.mp4"]
    assert sorted(path.name for path in out.iterdir()) == ["good0.mp4", "good1.mp4", "good2.mp4"]
    for index, (start, end) in enumerate(good):
        single = tmp_path / f"single{index}.mp4"
        trim(sparse_keyframes, single, start, end)
        batched = out / f"good{index}.mp4"
        assert [packet.pts for packet in demux(single)] == [packet.pts for packet in demux(batched)]
        frames = read_frames(batched, None, 24, window=(start, end))[0]
        assert np.array_equal(frames, read_frames(single, None, 24, window=(start, end))[0])


def test_a_bad_source_fails_only_its_own_window(sparse_keyframes, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    out = tmp_path / "clips"
    out.mkdir()
    windows = [
        Window(sparse_keyframes, out / "before.mp4", 0.5, 1.7),
        Window(text, out / "text.mp4", 0.0, 1.0),
        Window(sparse_keyframes, out / "after.mp4", 1.9, 2.4),
        Window(sparse_keyframes, out / "empty.mp4", 1.0, 1.0),
    ]
    errors = trim_many(windows)
    assert errors[0] is None and errors[2] is None
    assert str(errors[1]).startswith(f"{text}: ffmpeg could not trim it")
    assert "empty window" in str(errors[3])
    assert sorted(path.name for path in out.iterdir()) == ["after.mp4", "before.mp4"]


def test_windows_into_different_folders_are_cut_one_by_one(sparse_keyframes, tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    windows = [Window(sparse_keyframes, folder / "clip.mp4", 0.5, 1.7) for folder in folders]
    assert trim_many(windows) == [None, None]
    assert all((folder / "clip.mp4").is_file() for folder in folders)


def test_a_source_without_an_index_still_gives_the_whole_window(sparse_keyframes, tmp_path):
    """ffmpeg's input seeking in MPEG-TS lands past the keyframe at 0 s, so a stream copy of
    [0.5, 2.5) starts at the keyframe at 2 s; trim re-encodes from the start instead and keeps
    every frame of the window at its time. In a batch the same window is handed to trim."""
    transport = tmp_path / "source.ts"
    command = [ffmpeg_executable(), "-v", "error", "-i", str(sparse_keyframes), "-c", "copy"]
    subprocess.run([*command, str(transport)], check=True)
    copied = tmp_path / "copied.mp4"
    clips._ffmpeg(transport, copied, 0.5, 2.0 + clips.TAIL_SECONDS, clips.COPY)
    assert window(decode(copied), 0.5, 2.5)[0].time == 2.0, "the stream copy lost the lead-in"
    expected = window(decode(sparse_keyframes), 0.5, 2.5)
    out = tmp_path / "clips"
    out.mkdir()
    windows = [
        Window(transport, out / "ts.mp4", 0.5, 2.5),
        Window(sparse_keyframes, out / "mp4.mp4", 0.5, 2.5),
    ]
    assert trim_many(windows) == [None, None]
    trim(transport, tmp_path / "single.mp4", 0.5, 2.5)
    for clip in (out / "ts.mp4", tmp_path / "single.mp4"):
        kept = window(decode(clip), 0.5, 2.5)
        assert [frame.time for frame in kept] == [frame.time for frame in expected]
        assert np.abs(rgb(kept).astype(int) - rgb(expected)).mean() < 3
