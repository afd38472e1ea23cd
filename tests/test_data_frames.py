"""Decoding: the reference's center crop then Lanczos resize, frame-rate resampling, windows."""

from __future__ import annotations

import platform
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
import pytest
from av.video.reformatter import Interpolation
from helpers import synthetic_videos
from PIL import Image

from lvt.data.dataset import FrameShard
from lvt.data.frames import read_frames, write_frame_shard
from lvt.data.synthetic import write_synthetic_videos
from lvt.data.video_io import HEADERS_ONLY, ffmpeg_executable
from lvt.errors import InputError


def frames_of(*args, **kwargs) -> np.ndarray:
    return read_frames(*args, **kwargs)[0]


def full_resolution(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_frames_are_the_central_square_resized(small_videos):
    path = small_videos[0].path
    frames, rate = read_frames(path, None, 24)
    assert frames.shape == (60, 24, 24, 3) and frames.dtype == np.uint8 and rate == 30.0
    assert frames_of(path, None, 20).shape == (60, 20, 20, 3)
    assert frames_of(path, None, 96).shape == (60, 96, 96, 3)


def pillow_reference(path, size: int, shift: int = 0) -> np.ndarray:
    """The authors' scripts/convert_kinetics.py (rakhimovv/lvt at commit 0899c21): the central
    min(w, h) square of each full-size RGB frame (moved `shift` pixels right), resized with
    Pillow's Lanczos."""
    squares = []
    for frame in full_resolution(path):
        height, width = frame.shape[:2]
        side = min(width, height)
        left, top = (width - side) // 2 + shift, (height - side) // 2
        square = Image.fromarray(frame[top : top + side, left : left + side])
        squares.append(np.asarray(square.resize((size, size), Image.LANCZOS)))
    return np.stack(squares).astype(int)


@pytest.mark.parametrize(("width", "height"), [(128, 72), (66, 48), (48, 64)])
def test_frames_match_the_reference_pillow_crop_and_lanczos(tmp_path, width, height):
    """The same crop, to the pixel, and nearly the same values (the reference converted to RGB
    before resizing, we after). Sizes include an odd crop offset (66x48: 9 px) and a portrait."""
    (row,) = write_synthetic_videos(tmp_path, synthetic_videos(
        train_videos=1, test_videos=0, seconds=0.5, window_start=0.0, window_seconds=0.5, fps=30,
        width=width, height=height, shapes=3, seed=1,
    ))
    ours = frames_of(row.path, None, 16).astype(int)
    difference = np.abs(ours - pillow_reference(row.path, 16)).mean()
    assert difference < 2.5
    if width > height:
        assert difference < np.abs(ours - pillow_reference(row.path, 16, shift=1)).mean()


def test_resampling_picks_the_last_frame_at_or_before_each_time(small_videos):
    path = small_videos[0].path
    native = frames_of(path, None, 24)
    assert np.array_equal(frames_of(path, 10, 24), native[::3])
    doubled = frames_of(path, 60, 24)
    assert len(doubled) == 120
    assert np.array_equal(doubled[::2], native) and np.array_equal(doubled[1::2], native)
    twelve = frames_of(path, 12, 24)
    assert np.array_equal(twelve, native[[int(k * 2.5) for k in range(24)]])
    assert read_frames(path, 12, 24)[1] == 12


def test_a_window_keeps_the_frames_shown_in_it(small_videos):
    path = small_videos[0].path
    native = frames_of(path, None, 24)
    assert np.array_equal(frames_of(path, None, 24, window=(0.5, 1.0)), native[15:30])
    assert np.array_equal(frames_of(path, None, 24, window=(0.51, 1.01)), native[16:31])
    assert np.array_equal(frames_of(path, 10, 24, window=(0.5, 1.5)), native[15:45:3])
    with pytest.raises(InputError, match="no decodable video frame"):
        frames_of(path, None, 24, window=(2.5, 3.0))


def test_resized_frames_keep_the_content(small_videos):
    full = frames_of(small_videos[0].path, None, 48).astype(float)
    half = frames_of(small_videos[0].path, None, 24).astype(float)
    pooled = full.reshape(60, 24, 2, 24, 2, 3).mean(axis=(2, 4))
    assert np.abs(pooled - half).mean() < 4


def central_squares(path, width: int, height: int, left: int, top: int) -> list[av.VideoFrame]:
    """Each frame's width x height part at (left, top), cut by FFmpeg's crop filter."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream, time_base=Fraction(1, 1))
        crop = graph.add("crop", f"w={width}:h={height}:x={left}:y={top}:exact=1")
        sink = graph.add("buffersink")
        source.link_to(crop)
        crop.link_to(sink)
        graph.configure()
        squares = []
        for frame in container.decode(stream):
            graph.push(frame)
            squares.append(graph.pull())
        return squares


def test_the_filter_graph_gives_swscales_own_rgb_pixels(small_videos):
    """The resize goes through planar RGB, then packed RGB, inside one filter graph, for speed:
    the same bytes as swscale resizing the square straight into rgb24 with its default chroma
    siting."""
    interpolation = Interpolation.LANCZOS | Interpolation.FULL_CHR_H_INT
    packed = [
        square.reformat(24, 24, format="rgb24", interpolation=interpolation).to_ndarray()
        for square in central_squares(small_videos[0].path, 48, 48, 8, 0)
    ]
    assert np.array_equal(frames_of(small_videos[0].path, None, 24), np.stack(packed))


GATHERS_TEST = """
import sys
import numpy as np
from lvt.data import frames
from lvt.data.video_io import open_video

def resized(path):
    with open_video(path) as (container, stream):
        square = frames._CenterSquare(24)
        return np.stack([square(frame) for frame in container.decode(stream)])

before = resized(sys.argv[1])
libavutil = frames._loaded_libavutil()
assert libavutil is not None, "libavutil not found in /proc/self/maps"
# FFmpeg sets the flag itself on AMD CPUs up to Zen 4 and Intel ones up to Ice Lake; there the
# frames before and after come from the same scaler
print(bool(libavutil.av_get_cpu_flags() & frames.AV_CPU_FLAG_SLOW_GATHER))
frames.read_frames(sys.argv[1], None, 24)
assert libavutil.av_get_cpu_flags() & frames.AV_CPU_FLAG_SLOW_GATHER
assert np.array_equal(before, resized(sys.argv[1]))
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64", reason="x86 Linux only"
)
def test_the_scaler_without_gathers_gives_the_same_frames(small_videos):
    """read_frames sets FFmpeg's slow-gather flag (in a fresh process, as it lasts for the
    process); frames resized before and after are byte for byte the same. Where FFmpeg had set
    the flag already, the test says so instead of comparing two scalers."""
    result = subprocess.run([sys.executable, "-c", GATHERS_TEST, small_videos[0].path],
                            check=True, capture_output=True, text=True)
    if result.stdout.strip() == "True":
        pytest.skip("FFmpeg already avoids the gather-based scaler on this CPU")


def test_containers_without_a_frame_rate_in_their_headers_are_probed(small_videos, tmp_path):
    """An MPEG-TS copy opens without a frame rate from its headers alone; it is probed and gives
    the MP4's frames and rate."""
    source = small_videos[0].path
    transport = tmp_path / "copy.ts"
    command = [ffmpeg_executable(), "-v", "error", "-i", source, "-c", "copy", str(transport)]
    subprocess.run(command, check=True)
    with av.open(str(transport), options=HEADERS_ONLY) as container:
        assert not container.streams.video[0].average_rate
    frames, rate = read_frames(transport, None, 24)
    assert rate == 30.0 and np.array_equal(frames, frames_of(source, None, 24))


def test_undecodable_files_name_the_file(tmp_path):
    text = tmp_path / "text.mp4"
    text.write_text("hello\n")
    with pytest.raises(InputError, match=f"{text}: cannot decode"):
        read_frames(text, None, 16)
    with pytest.raises(InputError, match="missing.mp4"):
        read_frames(tmp_path / "missing.mp4", 10, 16)


def test_a_frame_shard_holds_each_decodable_clip_and_every_row(small_videos, tmp_path):
    """write_frame_shard decodes the windows of ok rows, records an undecodable clip as failed
    with the reason, and passes the rows that were not ok through."""
    good, skipped, broken = small_videos
    broken_clip = tmp_path / "broken.mp4"
    broken_clip.write_text("hello\n")
    clips = [(good, Path(good.path)),
             (skipped.with_status("skipped", "trim: too short"), Path(skipped.path)),
             (broken, broken_clip)]
    recorded = write_frame_shard(tmp_path / "shard.h5", clips, None, 24)
    with FrameShard(tmp_path / "shard.h5") as shard:
        assert shard.rows == recorded
        assert [row.status for row in shard.rows] == ["ok", "skipped", "failed"]
        assert shard.rows[2].reason.startswith("frames: cannot decode the video")
        frames, rate = shard.frames(good.video_id)
        assert rate == 30.0 and shard.source_size(good.video_id) == (64, 48)
        assert np.array_equal(frames, frames_of(good.path, None, 24, window=(0.5, 1.5)))
