"""Cut the kept window out of a source video with the ffmpeg executable, mostly without re-encoding.

A clip is a stream copy of the source's video from the keyframe at or before the window's start to
a little past its end (TAIL_SECONDS), with the source's timestamps counted from its start time (as
ffmpeg's -ss counts them). So a clip of the window [start, end) decodes to the frames a decoder
needs to reach `start`, then exactly the window's frames at their source times, start <= t < end,
then those of the tail; `lvt.data.frames.read_frames(clip, ..., window=(start, end))` keeps the
window. A source whose codec MP4 cannot hold is re-encoded instead (H.264, frame-accurate, same
timestamps, no frame before the window), and so is one whose copy starts after the window's start
(from the source's beginning, same timestamps). `trim_many` cuts many windows with one ffmpeg
process.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import ffmpeg

from lvt.atomic import atomic_path
from lvt.data.sources import SourceRow, format_seconds
from lvt.data.video_io import (
    HEADERS_ONLY,
    TIME_TOLERANCE,
    av_error_message,
    ffmpeg_executable,
    open_video,
)
from lvt.errors import InputError, problem_with

log = logging.getLogger(__name__)

CRF = 18
TAIL_SECONDS = 0.5
"""How far past the window a stream copy reaches, so that no frame of the window lacks a packet it
depends on (B-frames are decoded after the frames they refer to), whatever ffmpeg cuts by."""
STDERR_LINES = 5
"""How many of ffmpeg's last stderr lines an error message quotes."""
DISK_FULL = os.strerror(errno.ENOSPC)
"""How ffmpeg reports a full disk: the C library's text for ENOSPC. Not the source's fault."""
BATCH_SIZE = 48
"""Windows that `trim_many` cuts with one ffmpeg process. Starting the process costs about as
much as copying a 10 s window, and ffmpeg's threads pass packets on more cheaply the more streams
are under way. CPU time per 10.5 s window of 240p H.264, median (best) of 9 runs on 2 cores: one
window per process 10.4 (10.2) ms; batches of 12 5.2-6.0 (3.2-3.4) ms, of 48 3.4-3.5 (1.7-3.0)
ms, of 96 3.3-3.4 (1.7-3.2) ms. A batch of 48 took 56 MB of memory."""
GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-copyts", "-start_at_zero")

COPY = {"vcodec": "copy"}
REENCODE = {
    "vcodec": "libx264",
    "pix_fmt": "yuv420p",
    "crf": CRF,
    "preset": "veryfast",
    "fps_mode": "passthrough",
}


@dataclass(frozen=True)
class Window:
    """One clip to cut: the window [start, end) s of `source`, written to `target`."""

    source: str | os.PathLike[str]
    target: Path
    start: float
    end: float


def clip_path(clips_dir: str | os.PathLike[str], video_id: str) -> Path:
    """Where the trimmed clip of a video lives inside a clips folder."""
    return Path(clips_dir) / f"{video_id}.mp4"


def clips_manifest(clips_dir: str | os.PathLike[str]) -> Path:
    """The manifest of a clips folder: its rows with the status of the trim."""
    return Path(clips_dir) / "manifest.tsv"


def trim(
    source: str | os.PathLike[str], target: str | os.PathLike[str], start: float, end: float
) -> None:
    """Write the clip of the window [start, end) s of `source` to `target` (see the module doc).

    Video only (no audio, subtitles or data). The target is written atomically. A clip that
    starts after the window's start, or is empty (see `_inspect`), is cut again by re-encoding
    from the source's beginning. Raises InputError naming the source if ffmpeg fails or no frame
    of the clip lies in the window.
    """
    if end <= start:
        raise InputError(f"{source}: empty window [{start}, {end}) s")
    with atomic_path(target) as tmp:
        try:
            _ffmpeg(source, tmp, start, end - start + TAIL_SECONDS, COPY)
        except InputError:
            _ffmpeg(source, tmp, start, end - start, REENCODE)
        in_time, found = _inspect(source, tmp, start, end)
        if not in_time:
            _ffmpeg(source, tmp, 0.0, end, REENCODE)
            in_time, found = _inspect(source, tmp, start, end)
        if not found:
            raise InputError(f"{source}: trimming [{start}, {end}) s gave no video frame")


def trim_many(windows: Sequence[Window]) -> list[InputError | None]:
    """Cut every window as `trim` does, BATCH_SIZE stream copies per ffmpeg process.

    Returns, per window, None or the InputError that `trim` raised for it: one bad source fails only
    its own clip. A batch that ffmpeg rejects, and any clip of it that starts late or has no frame
    in its window (see `_inspect`), is redone one window at a time by `trim`, which re-encodes where
    a copy cannot be made and names the source in its error. Each process copies the first video
    stream that is not a cover picture of each source. Empty windows are left to `trim` (for its
    error), and batches whose targets lie in different folders are cut one by one.
    """
    errors: list[InputError | None] = []
    for first in range(0, len(windows), BATCH_SIZE):
        batch = windows[first : first + BATCH_SIZE]
        copied = _copy_together(batch)
        for window, done in zip(batch, copied, strict=True):
            error = None
            if not done:
                try:
                    trim(window.source, window.target, window.start, window.end)
                except InputError as failure:
                    error = failure
            errors.append(error)
    return errors


def trim_rows(rows: Sequence[SourceRow], clips_dir: Path) -> list[SourceRow]:
    """Cut the window of every `ok` row into `clips_dir` (`clip_path`) with `trim_many`.

    Returns the rows in their order, each whose trim failed now `failed` with the reason
    ("trim: ..."; `path` stays the source video), the others as they were.
    """
    todo = [row for row in rows if row.status == "ok"]
    windows = [Window(row.path, clip_path(clips_dir, row.video_id), row.start, row.end)
               for row in todo]
    errors = dict(zip((row.video_id for row in todo), trim_many(windows), strict=True))
    results = []
    for row in rows:
        if error := errors.get(row.video_id):
            log.warning("%s", error)
            reason = problem_with(error, row.path)
            row = row.with_status("failed", f"trim: {reason}")
        results.append(row)
    return results


def _copy_together(windows: Sequence[Window]) -> list[bool]:
    """Stream-copy the non-empty windows with one ffmpeg process into a scratch folder; move each
    clip that starts in time and has a frame in its window to its target. Which were moved: none
    if ffmpeg failed, or if fewer than two windows are non-empty or their targets lie in different
    folders.

    Sources are opened from their headers alone (HEADERS_ONLY): skipping the probe decoding halved
    the CPU time of a batch of 360p stream copies (12.7 -> 7.2 ms per window), with byte-identical
    clips. A source that needs probing fails the batch and gets `trim`'s ordinary open.
    """
    moved = [False] * len(windows)
    batch = [index for index, window in enumerate(windows) if window.end > window.start]
    if len(batch) < 2 or len({windows[index].target.parent for index in batch}) > 1:
        return moved
    outputs = []
    folder = windows[batch[0]].target.parent
    with tempfile.TemporaryDirectory(dir=folder, prefix=".trim-") as scratch:
        scratch_clips = {index: Path(scratch) / f"{index}.mp4" for index in batch}
        for index, clip in scratch_clips.items():
            window = windows[index]
            seconds = window.end - window.start + TAIL_SECONDS
            source = ffmpeg.input(
                str(window.source),
                ss=format_seconds(window.start),
                t=format_seconds(seconds),
                **HEADERS_ONLY,
            )
            outputs.append(source["V:0"].output(str(clip), format="mp4", **COPY))
        command = ffmpeg.merge_outputs(*outputs).global_args(*GLOBAL_ARGS).overwrite_output()
        try:
            _run_ffmpeg(command, folder)
        except ffmpeg.Error:
            return moved
        for index, clip in scratch_clips.items():
            window = windows[index]
            try:
                moved[index] = all(_inspect(window.source, clip, window.start, window.end))
            except InputError:
                continue
            if moved[index]:
                os.replace(clip, window.target)
        return moved


def _ffmpeg(
    source: str | os.PathLike[str], target: Path, start: float, seconds: float, codec: dict
) -> None:
    """Run ffmpeg on `seconds` of `source` from `start` (input seeking); InputError if it fails."""
    command = (
        ffmpeg.input(str(source), ss=format_seconds(start), t=format_seconds(seconds))
        .output(str(target), format="mp4", an=None, sn=None, dn=None, **codec)
        .global_args(*GLOBAL_ARGS)
        .overwrite_output()
    )
    try:
        _run_ffmpeg(command, target)
    except ffmpeg.Error as error:
        lines = error.stderr.decode(errors="replace").strip().splitlines()
        message = " | ".join(lines[-STDERR_LINES:]) or "no message"
        raise InputError(f"{source}: ffmpeg could not trim it: {message}") from error


def _run_ffmpeg(command: ffmpeg.nodes.OutputStream, target: str | os.PathLike[str]) -> None:
    """Run an ffmpeg command; OSError(ENOSPC) naming `target` if ffmpeg reports a full disk.

    Checked on success too: FFmpeg 5.1 (Debian 12's) exits with status 0 when it cannot write
    an MP4's trailer for want of space, leaving a truncated file behind.
    """
    try:
        _, stderr = command.run(cmd=ffmpeg_executable(), capture_stdout=True, capture_stderr=True)
        failure = None
    except ffmpeg.Error as error:
        stderr, failure = error.stderr, error
    if DISK_FULL in stderr.decode(errors="replace"):
        raise OSError(errno.ENOSPC, DISK_FULL, str(target)) from failure
    if failure is not None:
        raise failure


def _inspect(
    source: str | os.PathLike[str], clip: Path, start: float, end: float
) -> tuple[bool, bool]:
    """Whether the clip starts in time, and whether it has a video packet shown in [start, end) s.

    In time: its first keyframe lies at or before `start`, or at the source's first video frame.
    A stream copy always starts at a keyframe, at or before `start` where the source's seeking
    is exact; in a container without an index (MPEG-TS, for one) ffmpeg's input seeking can land
    past that keyframe, and the clip then starts at a later one, without the first frames of the
    window. Demuxing only; InputError names the source if the clip cannot be read.
    """
    try:
        first_key, found = _packet_times(clip, start, end)
        in_time = first_key is not None and (
            first_key <= start + TIME_TOLERANCE
            or first_key <= _first_video_time(source) + TIME_TOLERANCE
        )
    except (av.FFmpegError, OSError) as error:
        message = av_error_message(error)
        raise InputError(f"{source}: cannot read the trimmed clip ({message})") from error
    return in_time, found


def _packet_times(clip: Path, start: float, end: float) -> tuple[float | None, bool]:
    """The time of the clip's first video keyframe (None if it has none before the window), and
    whether a video packet is shown in [start, end) s."""
    first_key = None
    with av.open(str(clip), options=HEADERS_ONLY) as container:
        if not container.streams.video:
            return None, False
        for packet in container.demux(container.streams.video[0]):
            if packet.is_discard or packet.pts is None or packet.time_base is None:
                continue
            time = float(packet.pts * packet.time_base)
            if first_key is None and packet.is_keyframe:
                first_key = time
            if start - TIME_TOLERANCE <= time < end - TIME_TOLERANCE:
                return first_key, True
    return first_key, False


def _first_video_time(source: str | os.PathLike[str]) -> float:
    """When the source's first video packet is shown, counted as ffmpeg's -start_at_zero does
    (from the container's start time)."""
    with open_video(source) as (container, stream):
        origin = (container.start_time or 0) / av.time_base
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                return float(packet.pts * packet.time_base) - origin
    return float("inf")
