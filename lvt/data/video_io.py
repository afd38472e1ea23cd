"""Opening video files: with PyAV from their headers, probing them, and the ffmpeg executable.

The shared video I/O below the data modules that read and cut videos (`sources`, `clips`, `frames`,
`kinetics`), so that none of them imports another for it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
import imageio_ffmpeg
from av.container import InputContainer
from av.video.stream import VideoStream

from lvt.errors import InputError

HEADERS_ONLY = {"skip_frame": "all", "probesize": "32", "analyzeduration": "0"}
"""Options for opening a file (PyAV's `av.open`, ffmpeg's `-i`) from its container headers alone.

FFmpeg and PyAV otherwise probe a file by reading up to 5 s of its packets and decoding its first
frames, for stream details that MP4, Matroska/WebM, AVI, FLV and MOV headers already hold (those
whose headers lack them, such as MPEG-TS, open without a frame rate). Opening a 240p clip took
1.7 ms with probing, 0.9 ms without its decoding and 0.2 ms from the headers alone."""
DECODE_THREADS = 1
"""Decoder threads. Jobs run in parallel, one core each (the rules declare one thread), and
measured on 2 cores, frame threading cost up to a third more CPU time per frame."""
TIME_TOLERANCE = 1e-6
"""Seconds by which a timestamp may miss a boundary (an output time, a window's end) and still
count as on it."""


@dataclass(frozen=True)
class VideoInfo:
    """What probing a video file found out."""

    duration: float
    fps: float
    width: int
    height: int


def av_error_message(error: Exception) -> str:
    """An FFmpeg/OS error's message without the file name PyAV appends."""
    return getattr(error, "strerror", None) or str(error)


def ffmpeg_executable() -> str:
    """The `ffmpeg` on PATH if there is one, else the static binary imageio-ffmpeg ships."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


@contextmanager
def open_video(path: str | os.PathLike[str]) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open a video for decoding its first video stream on DECODE_THREADS threads.

    The file is opened from its headers alone (HEADERS_ONLY); one whose headers give no video
    stream or no frame rate (such as MPEG-TS) is probed as usual. Raises InputError naming the
    file if it is empty or has no video stream; FFmpeg's and the OS's errors pass through.
    """
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: empty file")
    container = av.open(str(path), options=HEADERS_ONLY)
    try:
        if not container.streams.video or not container.streams.video[0].average_rate:
            container.close()
            container = av.open(str(path))
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = DECODE_THREADS
        yield container, stream
    finally:
        container.close()


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open a video with PyAV, decode its first frame and report its duration, rate and size.

    Only the first frame is decoded, so damage further into a file shows up when it is trimmed
    or decoded. Raises InputError naming the file if it has no video stream, no decodable frame
    or no positive duration.
    """
    try:
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: empty file")
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise InputError(f"{path}: no decodable video frame")
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            rate = stream.average_rate or stream.guessed_rate
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"{path}: not a readable video ({av_error_message(error)})") from error
    if duration <= 0:
        raise InputError(f"{path}: no positive duration")
    return VideoInfo(
        duration=duration, fps=float(rate) if rate else 0.0, width=frame.width, height=frame.height
    )
