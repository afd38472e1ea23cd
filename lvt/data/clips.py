"""Cut the kept window out of a source video, frame-accurately, with the ffmpeg executable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import ffmpeg
import imageio_ffmpeg

from lvt.atomic import atomic_path
from lvt.data.sources import format_seconds, probe_video
from lvt.errors import InputError

CRF = 18
STDERR_LINES = 5
"""How many of ffmpeg's last stderr lines an error message quotes."""


def ffmpeg_executable() -> str:
    """The `ffmpeg` on PATH if there is one, else the static binary imageio-ffmpeg ships."""
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def clip_path(clips_dir: str | os.PathLike[str], video_id: str) -> Path:
    """Where the trimmed clip of a video lives inside a clips folder."""
    return Path(clips_dir) / f"{video_id}.mp4"


def clips_manifest(clips_dir: str | os.PathLike[str]) -> Path:
    """The manifest of a clips folder: its rows with the status of the trim."""
    return Path(clips_dir) / "manifest.tsv"


def trim(
    source: str | os.PathLike[str], target: str | os.PathLike[str], start: float, end: float
) -> None:
    """Re-encode [start, end) seconds of `source` into `target` (H.264, yuv420p, no audio).

    Seeking on the input while re-encoding makes the cut frame-accurate even when the window
    starts between keyframes. Frames keep their timestamps (no frame-rate conversion). The target
    is written atomically. Raises InputError naming the source if ffmpeg fails or the result
    holds no frame.
    """
    if end <= start:
        raise InputError(f"{source}: empty window [{start}, {end}) s")
    with atomic_path(target) as tmp:
        command = (
            ffmpeg.input(str(source), ss=format_seconds(start), t=format_seconds(end - start))
            .output(
                str(tmp),
                an=None,
                sn=None,
                dn=None,
                vcodec="libx264",
                pix_fmt="yuv420p",
                crf=CRF,
                preset="veryfast",
                fps_mode="passthrough",
                movflags="+faststart",
            )
            .global_args("-nostdin", "-hide_banner")
            .overwrite_output()
        )
        try:
            command.run(cmd=ffmpeg_executable(), capture_stdout=True, capture_stderr=True)
        except ffmpeg.Error as error:
            lines = error.stderr.decode(errors="replace").strip().splitlines()
            message = " | ".join(lines[-STDERR_LINES:]) or "no message"
            raise InputError(f"{source}: ffmpeg could not trim it: {message}") from error
        try:
            probe_video(tmp)
        except InputError as error:
            raise InputError(
                f"{source}: trimming [{start}, {end}) s gave no video frame "
                f"({str(error).removeprefix(f'{tmp}: ')})"
            ) from error
