"""Kinetics-600: validate the official CSVs, download the listed clips with yt-dlp, and turn the
per-video download outcomes into a source manifest.

Nothing from a CSV reaches a URL, a path or a log line before it has been validated: YouTube ids
must be 11 characters of `[A-Za-z0-9_-]` and labels are sanitised before they name a folder.
Every download outcome is appended to a journal under the download folder as soon as it is known,
so a re-run (even after a crash) never fetches a finished video again.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
from yt_dlp.utils import download_range_func

from lvt.atomic import write_text
from lvt.data.sources import SourceRow, Split, format_seconds
from lvt.data.video_io import ffmpeg_executable, probe_video
from lvt.errors import InputError, problem_with

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")

FORMAT = "bv*[height<=240][ext=mp4]/bv*[height<=240]/b[height<=240]/bv*/b"
"""yt-dlp format choice: the video stream only (frames are all we keep), at most 240p (frames
end up 64×64), mp4 preferred; any stream when nothing smaller is offered."""

UNAVAILABLE_STATUSES = frozenset({404, 410})
UNAVAILABLE_MESSAGES = (
    "video unavailable",
    "private video",
    "has been removed",
    "no longer available",
    "account associated with this video has been terminated",
    "this video is not available",
    "copyright",
    "members-only",
    "join this channel",
    "confirm your age",
    "server returned 404",
    "server returned 410",
)
"""Lower-case message fragments that mean a video is gone for good, so retrying is pointless."""

PARTIAL_UNSUPPORTED = "cannot be partially downloaded"
COVERAGE_TOLERANCE = 0.25
"""Seconds a downloaded file may fall short of what yt-dlp says it should hold (a cut-off
transfer can still decode, so the length is checked too)."""

OutcomeStatus = Literal["ok", "unavailable", "failed"]


@dataclass(frozen=True)
class KineticsRow:
    """A validated CSV row; `label` is already sanitised, `line` is the CSV line number."""

    youtube_id: str
    label: str
    time_start: float
    time_end: float
    line: int

    @property
    def key(self) -> str:
        """A unique, filesystem-safe name for the clip: `<id>_<start>_<end>`."""
        return clip_key(self.youtube_id, self.time_start, self.time_end)


@dataclass(frozen=True)
class InvalidRow:
    """A CSV row that failed validation; `label` is sanitised, `reason` says what is wrong."""

    line: int
    label: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What downloading one clip gave; `file_start`/`file_end` is the window the file holds."""

    youtube_id: str
    label: str
    time_start: float
    time_end: float
    status: OutcomeStatus
    path: str = ""
    file_start: float = 0.0
    file_end: float = 0.0
    attempts: int = 0
    message: str = ""

    @property
    def key(self) -> str:
        return clip_key(self.youtube_id, self.time_start, self.time_end)


OUTCOME_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(Outcome))
OUTCOME_NUMBERS = frozenset({"time_start", "time_end", "file_start", "file_end"})


class Unavailable(Exception):
    """The video is gone (removed, private, HTTP 404/410): retrying cannot help."""


class Transient(Exception):
    """The download failed in a way a later attempt may not (network, throttling, bad file)."""


def clip_key(youtube_id: str, time_start: float, time_end: float) -> str:
    """`<id>_<start>_<end>` with seconds as in `format_seconds` (`abcdefghijk_10_20`)."""
    return f"{youtube_id}_{format_seconds(time_start)}_{format_seconds(time_end)}"


def sanitise_label(label: str) -> str:
    """A label usable as one folder or key name: runs of other characters than `[A-Za-z0-9._-]`
    become `_`, leading dots and underscores are dropped (`../x` -> `x`); empty -> `unlabelled`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", label.strip()).lstrip("._").rstrip("_")
    return cleaned or "unlabelled"


def read_kinetics_csv(
    path: str | os.PathLike[str], limit: int | None = None
) -> tuple[list[KineticsRow], list[InvalidRow]]:
    """Validate an official Kinetics CSV: the valid rows and the invalid ones with their reason.

    Extra columns (such as `is_cc`) are allowed. A row is invalid when its id is not 11 characters
    of `[A-Za-z0-9_-]`, a time does not parse or is negative, start is not below end, or it repeats
    an earlier row's (id, time_start). `limit` keeps only the first `limit` data rows. Raises
    InputError naming the file if it cannot be read or lacks a required column.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the Kinetics CSV: {error}") from error
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: not a Kinetics CSV, missing columns {missing}")
    valid: list[KineticsRow] = []
    invalid: list[InvalidRow] = []
    first_line: dict[tuple[str, float], int] = {}
    for index, record in enumerate(reader):
        if limit is not None and index >= limit:
            break
        line = reader.line_num
        label = sanitise_label(record["label"] or "")
        try:
            row = _validated(record, label, line)
        except ValueError as error:
            invalid.append(InvalidRow(line, label, str(error)))
            continue
        earlier = first_line.setdefault((row.youtube_id, row.time_start), line)
        if earlier != line:
            invalid.append(InvalidRow(line, label, f"duplicate of line {earlier}"))
            continue
        valid.append(row)
    return valid, invalid


def _validated(record: Mapping[str, str | None], label: str, line: int) -> KineticsRow:
    """The row of a CSV record; ValueError says why it is invalid."""
    youtube_id = record["youtube_id"] or ""
    if not YOUTUBE_ID.fullmatch(youtube_id):
        raise ValueError(f"youtube_id {youtube_id[:40]!r} is not 11 characters of [A-Za-z0-9_-]")
    times = []
    for column in ("time_start", "time_end"):
        value = record[column] or ""
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{column} {value[:40]!r} is not a number") from None
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"{column} {value[:40]!r} is not a finite time >= 0")
        times.append(seconds)
    start, end = times
    if start >= end:
        raise ValueError(f"time_start {format_seconds(start)} is not below time_end "
                         f"{format_seconds(end)}")
    return KineticsRow(youtube_id, label, start, end, line)


def shard_of(rows: Sequence[KineticsRow], shard: int, shards: int) -> list[KineticsRow]:
    """The rows one download job handles: position in the validated list modulo `shards`."""
    return list(rows[shard::shards])


def format_outcomes(outcomes: Iterable[Outcome], header: bool = True) -> str:
    """Outcomes as TSV text (with a header line unless `header` is false)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, OUTCOME_COLUMNS, delimiter="\t", lineterminator="\n")
    if header:
        writer.writeheader()
    for outcome in outcomes:
        values = asdict(outcome)
        values.update({name: format_seconds(values[name]) for name in OUTCOME_NUMBERS})
        values["message"] = " ".join(outcome.message.split())
        writer.writerow(values)
    return buffer.getvalue()


def write_outcomes(path: str | os.PathLike[str], outcomes: Iterable[Outcome]) -> None:
    """Atomically write a shard's outcome manifest."""
    write_text(path, format_outcomes(outcomes))


def read_outcomes(path: str | os.PathLike[str], tolerant: bool = False) -> list[Outcome]:
    """Read an outcome TSV. With `tolerant`, malformed lines (a journal line cut off by a crash)
    are skipped; otherwise InputError names the file and line."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read the outcome manifest: {error.strerror}") from error
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    if list(reader.fieldnames or []) != list(OUTCOME_COLUMNS):
        if tolerant:
            return []
        raise InputError(f"{path}: not an outcome manifest, columns {reader.fieldnames}")
    outcomes = []
    for record in reader:
        try:
            values: dict[str, Any] = dict(record)
            values.update({name: float(values[name]) for name in OUTCOME_NUMBERS})
            values["attempts"] = int(values["attempts"])
            if values["status"] not in ("ok", "unavailable", "failed"):
                raise ValueError(f"status {values['status']!r}")
            outcomes.append(Outcome(**values))
        except (TypeError, ValueError) as error:
            if not tolerant:
                raise InputError(f"{path}, line {reader.line_num}: {error}") from error
    return outcomes


def journal_path(folder: str | os.PathLike[str], split: Split, shard: int) -> Path:
    """The append-only record of one shard's download outcomes, kept across runs."""
    return Path(folder) / "journal" / split / f"shard{shard}.tsv"


def read_journals(folder: str | os.PathLike[str], split: Split) -> dict[str, Outcome]:
    """The best known outcome per clip key from every journal of a split (any shard count).

    An `ok` whose file still exists wins; otherwise the last record read wins.
    """
    known: dict[str, Outcome] = {}
    for path in sorted((Path(folder) / "journal" / split).glob("*.tsv")):
        for outcome in read_outcomes(path, tolerant=True):
            current = known.get(outcome.key)
            if current is None or not _finished(current):
                known[outcome.key] = outcome
    return known


def _finished(outcome: Outcome) -> bool:
    return outcome.status == "ok" and Path(outcome.path).is_file()


def _append_journal(path: Path, outcome: Outcome) -> None:
    """Append one outcome line (with the header if the journal is new), first ending a line that
    a crash cut off so that it cannot swallow the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as journal:
        size = journal.seek(0, os.SEEK_END)
        if size:
            journal.seek(size - 1)
            if journal.read(1) != b"\n":
                journal.write(b"\n")
        journal.write(format_outcomes([outcome], header=size == 0).encode())


@dataclass(frozen=True)
class DownloadOptions:
    """How a download job fetches clips: the `source.kinetics600` settings of these names (the
    schema describes them and holds their defaults)."""

    url_template: str
    rate_limit: int | None
    sleep_seconds: float
    retries: int
    backoff_seconds: float
    retry_failed: bool
    retry_unavailable: bool


def download_shard(
    rows: Sequence[KineticsRow],
    folder: str | os.PathLike[str],
    journal: str | os.PathLike[str],
    options: DownloadOptions,
    previous: Mapping[str, Outcome] | None = None,
) -> list[Outcome]:
    """Download the clips of `rows` into `<folder>/videos/<label>/<key>.<ext>`; one outcome each.

    A clip whose `previous` outcome is ok (and whose file exists) is not fetched again; a previous
    `failed` one only with `options.retry_failed`, an `unavailable` one only with
    `options.retry_unavailable`. Each fetched outcome is appended to `journal` at once.
    `options.rate_limit` (bytes/s) is passed to yt-dlp and also enforced on average by pausing
    after each clip (ffmpeg's partial downloads ignore yt-dlp's limit); `options.sleep_seconds`
    is the pause between two fetched clips.
    """
    previous = previous or {}
    outcomes = []
    fetched = 0
    for row in rows:
        known = previous.get(row.key)
        if known is not None and _keep(known, options):
            outcomes.append(known)
            continue
        if fetched and options.sleep_seconds:
            time.sleep(options.sleep_seconds)
        started = time.monotonic()
        outcome = download_clip(row, Path(folder), options)
        fetched += 1
        _append_journal(Path(journal), outcome)
        if outcome.status == "ok":
            log.info("%s: ok (%s)", row.key, outcome.path)
            if options.rate_limit:
                owed = (os.path.getsize(outcome.path) / options.rate_limit
                        - (time.monotonic() - started))
                time.sleep(max(0.0, owed))
        else:
            log.warning("%s: %s after %d attempts: %s", row.key, outcome.status,
                        outcome.attempts, outcome.message)
        outcomes.append(outcome)
    return outcomes


def _keep(known: Outcome, options: DownloadOptions) -> bool:
    """Whether a previous outcome stands instead of fetching the clip again."""
    if known.status == "ok":
        return _finished(known)
    retry = options.retry_failed if known.status == "failed" else options.retry_unavailable
    return not retry


def download_clip(row: KineticsRow, folder: Path, options: DownloadOptions) -> Outcome:
    """Fetch one clip from `options.url_template`, retrying transient failures up to
    `options.retries` times after `options.backoff_seconds`, doubled each time."""
    url = options.url_template.format(youtube_id=row.youtube_id)
    outcome = Outcome(row.youtube_id, row.label, row.time_start, row.time_end, "failed")
    message = ""
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.backoff_seconds * 2 ** (attempt - 1))
        try:
            path, file_start, file_end = _fetch(row, folder, url, options.rate_limit)
        except Unavailable as error:
            return replace(outcome, status="unavailable", attempts=attempt + 1, message=str(error))
        except Transient as error:
            message = str(error)
            log.info("%s: attempt %d failed: %s", row.key, attempt + 1, message)
            continue
        return replace(outcome, status="ok", path=str(path), file_start=file_start,
                       file_end=file_end, attempts=attempt + 1)
    return replace(outcome, attempts=options.retries + 1, message=message)


def _fetch(row: KineticsRow, folder: Path, url: str, rate_limit: int | None) -> tuple[Path, float,
                                                                                       float]:
    """Download into a scratch folder, check the file decodes and move it into place.

    Returns the final path and the window of the source video it holds. Only the window is
    fetched when the server allows it; otherwise the whole video.
    """
    scratch = folder / ".partial" / f"{row.key}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            expected = _run_yt_dlp(url, scratch, rate_limit, (row.time_start, row.time_end))
            file_start = row.time_start
        except Transient as error:
            if PARTIAL_UNSUPPORTED not in str(error):
                raise
            log.info("%s: the server cannot serve a window, fetching the whole video", row.key)
            expected = _run_yt_dlp(url, scratch, rate_limit, None)
            file_start = 0.0
        files = [path for path in scratch.iterdir() if not path.name.endswith((".part", ".ytdl"))]
        if len(files) != 1:
            raise Transient(f"yt-dlp reported success but left {len(files)} files")
        try:
            info = probe_video(files[0])
        except InputError as error:
            reason = problem_with(error, files[0])
            raise Transient(f"the downloaded file is not a usable video: {reason}") from error
        if expected is not None and info.duration < expected - COVERAGE_TOLERANCE:
            raise Transient(f"the downloaded file holds {info.duration:.2f} s of {expected:.2f} s")
        target = folder / "videos" / row.label / f"{row.key}{files[0].suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(files[0], target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, file_start, file_start + info.duration


class _YtDlpLog:
    """Routes yt-dlp's messages to this module's logger (its errors come back as exceptions)."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        log.warning("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)


def _run_yt_dlp(
    url: str, scratch: Path, rate_limit: int | None, window: tuple[float, float] | None
) -> float | None:
    """One yt-dlp download into `scratch`; raises Unavailable or Transient.

    Returns the seconds the file should hold when yt-dlp knows the video's length (the window,
    clipped to the video's end), else None.

    yt-dlp's own retries are off: `download_clip` retries with back-off. With a window, ffmpeg
    re-encodes at the cuts (force_keyframes_at_cuts) so the clip starts exactly at time_start.
    """
    # yt-dlp checks for ffmpeg before a partial download without looking at the ffmpeg_location
    # option; its command line sets this context variable for that check, so do the same.
    FFmpegPostProcessor._ffmpeg_location.set(ffmpeg_executable())
    options: dict[str, Any] = {
        "outtmpl": str(scratch / "video.%(ext)s"),
        "format": FORMAT,
        "ffmpeg_location": ffmpeg_executable(),
        "ratelimit": rate_limit,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "noplaylist": True,
        "quiet": True,
        "noprogress": True,
        "logger": _YtDlpLog(),
    }
    if window is not None:
        options["download_ranges"] = download_range_func(None, [window])
        options["force_keyframes_at_cuts"] = True
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.YoutubeDLError as error:
        message = " ".join(str(error).removeprefix("ERROR: ").split())
        if _is_unavailable(error):
            raise Unavailable(message) from error
        raise Transient(message) from error
    download = (info.get("requested_downloads") or [info])[0]
    if download.get("section_end") is not None:
        return download["section_end"] - download["section_start"]
    return download.get("duration")


def _is_unavailable(error: BaseException) -> bool:
    """Whether an error, or any error behind it, says the video is gone for good."""
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, HTTPError) and current.status in UNAVAILABLE_STATUSES:
            return True
        if any(fragment in str(current).lower() for fragment in UNAVAILABLE_MESSAGES):
            return True
        exc_info = getattr(current, "exc_info", None)
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None),
                    exc_info[1] if isinstance(exc_info, tuple) else None]
    return False


def source_rows(
    outcomes: Iterable[Outcome], invalid: Iterable[InvalidRow], split: Split, csv_path: str
) -> list[SourceRow]:
    """Source manifest rows of one split: every outcome and every invalid CSV row.

    An ok clip keeps [time_start, time_end) relative to the file's start, clipped to what the file
    holds (a file holding just the window keeps [0, duration)). Unavailable clips and invalid rows
    are `skipped`; failed downloads, and clips whose file misses the window, are `failed`.
    """
    rows = []
    for outcome in outcomes:
        row = SourceRow(outcome.key, outcome.path, split, 0.0, 0.0, outcome.label)
        if outcome.status == "ok":
            start = max(outcome.time_start, outcome.file_start) - outcome.file_start
            end = min(outcome.time_end, outcome.file_end) - outcome.file_start
            if start < end:
                rows.append(replace(row, start=start, end=end))
            else:
                rows.append(row.with_status("failed", f"download: the video ends at "
                                            f"{format_seconds(outcome.file_end)} s, before the "
                                            "window"))
        else:
            status = "skipped" if outcome.status == "unavailable" else "failed"
            rows.append(row.with_status(status, f"download: {outcome.status}: {outcome.message}"))
    for bad in invalid:
        row = SourceRow(f"{split}-csv-line{bad.line}", f"{csv_path}:{bad.line}", split, 0.0, 0.0,
                        bad.label)
        rows.append(row.with_status("skipped", f"invalid CSV row: {bad.reason}"))
    return rows


def without_duplicate_ids(rows: Iterable[SourceRow]) -> list[SourceRow]:
    """Rows whose clip key repeats an earlier row's (a clip listed in both splits) are renamed
    `<key>-<split>` and skipped, so that every video id of the manifest is unique."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row.video_id in seen:
            row = replace(row, video_id=f"{row.video_id}-{row.split}").with_status(
                "skipped", "duplicate: the clip is listed in an earlier split too")
        seen.add(row.video_id)
        unique.append(row)
    return unique
