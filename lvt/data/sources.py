"""The source manifest: which videos exist, which split they belong to and which window to keep.

A manifest is a TSV with one row per video (see `COLUMNS`). Every later stage carries the rows
forward and only changes `status` and `reason`, so the final report can say for every source
video whether it made it into the dataset and, if not, why.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from lvt.atomic import write_text
from lvt.data.video_io import probe_video
from lvt.errors import InputError, problem_with

log = logging.getLogger(__name__)

Split = Literal["train", "test"]
Status = Literal["ok", "skipped", "failed"]
SPLITS: tuple[Split, ...] = ("train", "test")
STATUSES: tuple[Status, ...] = ("ok", "skipped", "failed")

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".wmv", ".ogv"}
    | {".3gp", ".ts", ".mts", ".m2ts", ".vob"}
)
"""File name endings `scan_local` treats as videos (case-insensitive); other files are ignored."""


@dataclass(frozen=True)
class SourceRow:
    """One video of a manifest; `start`/`end` are the window to keep, in seconds."""

    video_id: str
    path: str
    split: Split
    start: float
    end: float
    label: str = ""
    status: Status = "ok"
    reason: str = ""

    def with_status(self, status: Status, reason: str = "") -> SourceRow:
        """A copy with a new status; the reason is flattened to one line for the TSV."""
        return replace(self, status=status, reason=" ".join(reason.split()))


COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(SourceRow))


def format_seconds(seconds: float) -> str:
    """Seconds with at most microsecond precision and no trailing zeros (0.5, 3, 12.25)."""
    return f"{seconds:.6f}".rstrip("0").rstrip(".")


def format_manifest(rows: Iterable[SourceRow]) -> str:
    """Manifest rows as TSV text with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        values["start"] = format_seconds(row.start)
        values["end"] = format_seconds(row.end)
        writer.writerow(values)
    return buffer.getvalue()


def parse_manifest(text: str, origin: str) -> list[SourceRow]:
    """Parse TSV manifest text; `origin` names where it came from in error messages."""
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{origin}: not a source manifest, missing columns {missing}")
    rows = []
    for line, record in enumerate(reader, start=2):
        try:
            row = SourceRow(
                video_id=record["video_id"],
                path=record["path"],
                split=record["split"],
                start=float(record["start"]),
                end=float(record["end"]),
                label=record["label"] or "",
                status=record["status"],
                reason=record["reason"] or "",
            )
        except (TypeError, ValueError) as error:
            raise InputError(f"{origin}, line {line}: {error}") from error
        if row.split not in SPLITS or row.status not in STATUSES or not row.video_id:
            raise InputError(
                f"{origin}, line {line}: needs a video_id, split in {SPLITS} and status in "
                f"{STATUSES}, got {record['video_id']!r}, {row.split!r}, {row.status!r}"
            )
        rows.append(row)
    duplicates = sorted(id for id, count in Counter(r.video_id for r in rows).items() if count > 1)
    if duplicates:
        raise InputError(f"{origin}: duplicate video_id {duplicates[:5]}")
    return rows


def write_manifest(path: str | os.PathLike[str], rows: Iterable[SourceRow]) -> None:
    """Atomically write a manifest TSV."""
    write_text(path, format_manifest(rows))


def read_manifest(path: str | os.PathLike[str]) -> list[SourceRow]:
    """Read a manifest TSV; InputError names the file if it is missing or malformed."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read the manifest: {error.strerror}") from error
    return parse_manifest(text, str(path))


def shard_rows(rows: Sequence[SourceRow], split: str, shard: int, shards: int) -> list[SourceRow]:
    """The rows one shard of a split handles.

    Its share of the split's ok rows (position in manifest order modulo `shards` is `shard`),
    plus, in shard 0, the split's rows that are not ok, so that each row is carried forward once.
    """
    in_split = [row for row in rows if row.split == split]
    usable = [row for row in in_split if row.status == "ok"]
    carried = [row for row in in_split if row.status != "ok"] if shard == 0 else []
    return usable[shard::shards] + carried


def video_id_for(relative_path: str | os.PathLike[str]) -> str:
    """A filesystem-safe id from a path relative to the source folder (`a/b c.mp4` -> `a__b_c`)."""
    parts = Path(relative_path).with_suffix("").parts
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "_" for part in parts)


def scan_local(
    folder: str | os.PathLike[str], split_by_folder: bool, test_fraction: float, seed: int
) -> list[SourceRow]:
    """Build a manifest from a folder of videos; every row's window is the whole video.

    Files with a video suffix are found recursively (hidden files and folders are ignored). The
    first folder below the split root is the class label (`<label>/<video>`, or with
    `split_by_folder` `train/<label>/<video>`). A file PyAV cannot decode is kept with status
    `skipped` and the reason. Without `split_by_folder` the usable videos are ordered by a seeded
    hash of their id and the first round(n * test_fraction) of them (at least one and at most
    n - 1 when n >= 2) go to test; every other row whose hash is at most the last test video's
    goes to test too. Adding a video therefore moves at most one other video between splits.
    Raises InputError naming the folder when no usable video is found.
    """
    root = Path(folder)
    rows = []
    for path in video_files(root):
        relative = path.relative_to(root)
        parts = relative.parts
        if split_by_folder:
            if parts[0] not in SPLITS:
                log.warning("%s: ignored, not under %s/train or %s/test", path, root, root)
                continue
            split, class_parts = parts[0], parts[1:-1]
        else:
            split, class_parts = "train", parts[:-1]
        label = class_parts[0] if class_parts else ""
        row = SourceRow(video_id_for(relative), str(path), split, 0.0, 0.0, label)
        try:
            info = probe_video(path)
        except InputError as error:
            rows.append(row.with_status("skipped", problem_with(error, path)))
            continue
        rows.append(replace(row, end=info.duration))
    rows = _unique_ids(rows, root)
    if not split_by_folder:
        rows = _draw_split(rows, test_fraction, seed)
    if not rows:
        raise InputError(f"{root}: no video files (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    if not any(row.status == "ok" for row in rows):
        examples = "; ".join(f"{row.path}: {row.reason}" for row in rows[:3])
        raise InputError(f"{root}: no usable video, all {len(rows)} skipped ({examples})")
    return rows


def video_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files `scan_local` considers: those with a video suffix below `folder`, sorted.

    Hidden files and folders are skipped. The workflow lists them as the scan's inputs, so that
    adding, removing or changing one re-runs it. Raises InputError if the folder does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: source folder does not exist")
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                found.append(Path(directory) / name)
    return found


def _unique_ids(rows: Sequence[SourceRow], root: Path) -> list[SourceRow]:
    """Give rows whose sanitised ids collide an id suffixed with a hash of their relative path."""
    counts = Counter(row.video_id for row in rows)

    def suffix(row: SourceRow) -> str:
        relative = Path(row.path).relative_to(root).as_posix()
        return hashlib.sha256(relative.encode()).hexdigest()[:8]

    return [
        replace(row, video_id=f"{row.video_id}-{suffix(row)}") if counts[row.video_id] > 1 else row
        for row in rows
    ]


def _draw_split(rows: Sequence[SourceRow], test_fraction: float, seed: int) -> list[SourceRow]:
    """Assign train/test by the seeded hash rule described in `scan_local`."""
    keys = {row.video_id: _seeded_fraction(row.video_id, seed) for row in rows}
    usable = sorted(keys[row.video_id] for row in rows if row.status == "ok")
    n_test = min(max(round(len(usable) * test_fraction), 1), len(usable) - 1)
    boundary = usable[n_test - 1] if n_test > 0 else -1.0
    return [
        replace(row, split="test" if keys[row.video_id] <= boundary else "train") for row in rows
    ]


def _seeded_fraction(key: str, seed: int) -> float:
    """A deterministic pseudo-random number in [0, 1) from a key and a seed."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
