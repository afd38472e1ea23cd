"""Kinetics-600: CSV validation, downloads from a local HTTP server, and the real workflow."""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import pytest
from helpers import synthetic_videos
from test_workflow import copy_workflow, snakemake, write_config

from lvt.data.kinetics import (
    DownloadOptions,
    KineticsRow,
    Outcome,
    download_shard,
    journal_path,
    read_journals,
    read_kinetics_csv,
    read_outcomes,
    sanitise_label,
    shard_of,
    source_rows,
    write_outcomes,
)
from lvt.data.sources import read_manifest
from lvt.data.synthetic import write_synthetic_videos
from lvt.data.video_io import probe_video
from lvt.errors import InputError

HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"
GOOD = ["goodvideo01", "goodvideo02", "goodvideo03"]
MISSING = "missing0404"
CORRUPT = "corruptfile"
TRUNCATED = "truncated01"
FLAKY = "flakyvideo1"
"""Answers 503 to its first two requests, then serves a good video."""
FLAKY_FAILURES = 2


class VideoServer(ThreadingHTTPServer):
    """Serves `/<id>.mp4` from memory with HTTP Range support and logs every request path."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files = files
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/{{youtube_id}}.mp4"

    def count(self, youtube_id: str) -> int:
        with self.lock:
            return sum(path == f"/{youtube_id}.mp4" for path in self.requests)


class RangeHandler(BaseHTTPRequestHandler):
    server: VideoServer

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        youtube_id = self.path.removeprefix("/").removesuffix(".mp4")
        data = self.server.files.get(youtube_id)
        if youtube_id == FLAKY and self.server.count(FLAKY) <= FLAKY_FAILURES:
            return self.send_error(HTTPStatus.SERVICE_UNAVAILABLE)
        if data is None:
            return self.send_error(HTTPStatus.NOT_FOUND)
        start, end = 0, len(data) - 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2) or end), end)
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data[start:end + 1])

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the request log is `server.requests`."""


@pytest.fixture(scope="module")
def video_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Good videos (3 s, 80x64, 15 fps) under their ids, plus a corrupt and a truncated file."""
    videos = synthetic_videos(train_videos=4, test_videos=0, seconds=3.0, window_start=0.0,
                              window_seconds=3.0, fps=15, width=80, height=64, shapes=2, seed=1)
    rows = write_synthetic_videos(tmp_path_factory.mktemp("served"), videos)
    data = [Path(row.path).read_bytes() for row in rows]
    files = dict(zip([*GOOD, FLAKY], data, strict=True))
    files[CORRUPT] = bytes(range(256)) * 200
    files[TRUNCATED] = data[0][: len(data[0]) // 2]
    return files


@pytest.fixture
def server(video_files: dict[str, bytes]) -> Iterator[VideoServer]:
    with VideoServer(video_files) as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        yield running
        running.shutdown()


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def test_csv_validation_lists_every_invalid_row_with_its_reason(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "train.csv", [
        "abseiling,goodvideo01,1,3,train,0",
        "juggling balls,goodvideo02,0,2,train,1",
        "x,short,0,2,train,0",
        "x,goodvideo0;rm,0,2,train,0",
        "x,$(rm -rf ~),0,2,train,0",
        "x,goodvideo03,2,2,train,0",
        "x,goodvideo03,3,1,train,0",
        "x,goodvideo03,zero,1,train,0",
        "../../etc,goodvideo03,0,1,train,0",
        "dup,goodvideo01,1,4,train,0",
    ])
    valid, invalid = read_kinetics_csv(csv_path)
    assert [(row.youtube_id, row.label, row.time_start, row.time_end) for row in valid] == [
        ("goodvideo01", "abseiling", 1, 3), ("goodvideo02", "juggling_balls", 0, 2),
        ("goodvideo03", "etc", 0, 1)]
    reasons = {row.line: row.reason for row in invalid}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 11]
    for line in (4, 5, 6):
        assert "is not 11 characters" in reasons[line]
    assert "not below time_end" in reasons[7] and "not below time_end" in reasons[8]
    assert "'zero' is not a number" in reasons[9]
    assert reasons[11] == "duplicate of line 2"
    assert read_kinetics_csv(csv_path, limit=2)[0] == valid[:2]


def test_csv_needs_the_required_columns_and_allows_extra_ones(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("label,youtube_id,time_start,split\nx,goodvideo01,0,train\n")
    with pytest.raises(InputError, match=r"missing columns \['time_end'\]"):
        read_kinetics_csv(missing)
    extra = tmp_path / "extra.csv"
    extra.write_text("split,time_end,time_start,youtube_id,label,comment\n"
                     "train,10,0,goodvideo01,x,hello\n")
    assert len(read_kinetics_csv(extra)[0]) == 1


@pytest.mark.parametrize(("label", "expected"), [
    ("playing bagpipes", "playing_bagpipes"), ("../../etc/passwd", "etc_passwd"),
    ("..", "unlabelled"), (".hidden", "hidden"), ("a/b\\c", "a_b_c"), ("", "unlabelled"),
    ("x; rm -rf $HOME", "x_rm_-rf_HOME"),
    ("passing American football (in game)", "passing_American_football_in_game"),
])
def test_labels_are_safe_folder_names(label: str, expected: str) -> None:
    assert sanitise_label(label) == expected


def test_sharding_is_deterministic_and_covers_every_row() -> None:
    rows = [KineticsRow(f"video{index:06d}", "x", 0, 1, index) for index in range(10)]
    shards = [shard_of(rows, shard, 3) for shard in range(3)]
    assert sorted(row.line for shard in shards for row in shard) == list(range(10))
    assert [row.line for row in shards[1]] == [1, 4, 7]


def rows_for(ids: list[str]) -> list[KineticsRow]:
    return [KineticsRow(youtube_id, "some_label", 0.5, 2.0, line)
            for line, youtube_id in enumerate(ids, start=2)]


def download(rows: list[KineticsRow], folder: Path, server: VideoServer, retry_failed: bool,
             retry_unavailable: bool = False) -> list[Outcome]:
    journal = journal_path(folder, "train", 0)
    options = DownloadOptions(server.url_template, rate_limit=None, sleep_seconds=0,
                              retries=FLAKY_FAILURES, backoff_seconds=0.01,
                              retry_failed=retry_failed, retry_unavailable=retry_unavailable)
    return download_shard(rows, folder, journal, options,
                          previous=read_journals(folder, "train"))


def test_download_records_every_outcome_and_never_refetches(tmp_path: Path,
                                                            server: VideoServer) -> None:
    folder = tmp_path / "kinetics"
    rows = rows_for([GOOD[0], MISSING, CORRUPT, TRUNCATED, FLAKY])
    outcomes = {outcome.youtube_id: outcome for outcome in download(rows, folder, server,
                                                                    retry_failed=False)}
    assert {key: outcome.status for key, outcome in outcomes.items()} == {
        GOOD[0]: "ok", MISSING: "unavailable", CORRUPT: "failed", TRUNCATED: "failed",
        FLAKY: "ok"}
    for youtube_id in (GOOD[0], FLAKY):
        ok = outcomes[youtube_id]
        info = probe_video(ok.path)
        # only the window was fetched, re-encoded at the cuts: 1.5 s of 15 fps
        assert (ok.file_start, ok.file_end) == (0.5, pytest.approx(2.0, abs=0.1))
        assert info.duration == pytest.approx(1.5, abs=0.1)
        assert Path(ok.path).parent == folder / "videos" / "some_label"
    assert outcomes[FLAKY].attempts == FLAKY_FAILURES + 1
    assert outcomes[MISSING].attempts == 1 and "404" in outcomes[MISSING].message
    for youtube_id in (CORRUPT, TRUNCATED):
        assert outcomes[youtube_id].attempts == FLAKY_FAILURES + 1
        assert outcomes[youtube_id].message
    assert not list((folder / ".partial").iterdir())

    assert "holds" in outcomes[TRUNCATED].message
    with journal_path(folder, "train", 0).open("a") as journal:
        journal.write(f"{GOOD[1]}\tsome_la")  # a line cut off by a crash

    before = Counter(server.requests)
    download(rows, folder, server, retry_failed=False)
    assert Counter(server.requests) == before, "a second run fetched something again"

    download(rows, folder, server, retry_failed=True)
    fetched_again = {path.strip("/").removesuffix(".mp4")
                     for path in (Counter(server.requests) - before)}
    assert fetched_again == {CORRUPT, TRUNCATED}
    before = Counter(server.requests)
    download(rows, folder, server, retry_failed=False, retry_unavailable=True)
    assert {path.strip("/").removesuffix(".mp4")
            for path in (Counter(server.requests) - before)} == {MISSING}
    assert {outcome.youtube_id for outcome in read_journals(folder, "train").values()} == {
        row.youtube_id for row in rows}


def test_outcomes_become_source_rows(tmp_path: Path) -> None:
    outcomes = [
        Outcome("goodvideo01", "a", 10, 20, "ok", "v1.mp4", 10, 19.5, 1),
        Outcome("goodvideo02", "a", 10, 20, "ok", "v2.mp4", 0, 300, 1),
        Outcome("goodvideo03", "a", 10, 20, "ok", "v3.mp4", 0, 8, 1),
        Outcome("missing0404", "b", 0, 10, "unavailable", attempts=1, message="HTTP Error 404"),
        Outcome("corruptfile", "b", 0, 10, "failed", attempts=3, message="ffmpeg\texited"),
    ]
    write_outcomes(tmp_path / "outcomes.tsv", outcomes)
    assert read_outcomes(tmp_path / "outcomes.tsv")[:4] == outcomes[:4]
    invalid = read_kinetics_csv(write_csv(tmp_path / "t.csv", ["x,bad,0,1,test,0"]))[1]
    rows = source_rows(read_outcomes(tmp_path / "outcomes.tsv"), invalid, "test", "t.csv")
    assert [(row.video_id, row.status, row.start, row.end) for row in rows] == [
        ("goodvideo01_10_20", "ok", 0, 9.5), ("goodvideo02_10_20", "ok", 10, 20),
        ("goodvideo03_10_20", "failed", 0, 0), ("missing0404_0_10", "skipped", 0, 0),
        ("corruptfile_0_10", "failed", 0, 0), ("test-csv-line2", "skipped", 0, 0)]
    assert rows[3].reason == "download: unavailable: HTTP Error 404"
    assert rows[4].reason == "download: failed: ffmpeg exited"
    assert rows[5].reason.startswith("invalid CSV row: youtube_id 'bad'")


@pytest.mark.slow
def test_workflow_downloads_and_reports_failures(tmp_path: Path, server: VideoServer) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    train_csv = write_csv(tmp_path / "train.csv", [
        f"abseiling,{GOOD[0]},0.5,2.5,train,0", f"../juggling,{GOOD[1]},0,2,train,0",
        f"abseiling,{MISSING},0,2,train,0", f"abseiling,{CORRUPT},0,2,train,0",
        "abseiling,not-an-id,0,2,train,0"])
    test_csv = write_csv(tmp_path / "test.csv", [
        f"juggling,{GOOD[2]},1,3,test,0", f"juggling,{TRUNCATED},0,2,test,0"])
    config = {
        "run": "k600",
        "source": {"kind": "kinetics600", "kinetics600": {
            "train_csv": str(train_csv), "test_csv": str(test_csv),
            "url_template": server.url_template, "folder": str(tmp_path / "k600"),
            "shards": 2, "rate_limit": None, "sleep_seconds": 0, "retries": 1,
            "backoff_seconds": 0.01}},
        "preprocess": {"shards": 1},
    }
    snakemake(workdir, "crop", "--configfile", write_config(workdir / "k600.yaml", config))
    data = workdir / "results" / "k600" / "data"
    for split, good, failures in (
        ("train", {f"{GOOD[0]}_0.5_2.5", f"{GOOD[1]}_0_2"},
         {f"{MISSING}_0_2": "skipped", f"{CORRUPT}_0_2": "failed",
          "train-csv-line6": "skipped"}),
        ("test", {f"{GOOD[2]}_1_3"}, {f"{TRUNCATED}_0_2": "failed"}),
    ):
        with h5py.File(data / f"{split}.h5") as packed:
            assert {name.split("@")[0] for name in packed["video_ids"].asstr()[:]} == good
        rows = {row.video_id: row for row in read_manifest(data / f"{split}.tsv")}
        assert {key: row.status for key, row in rows.items() if row.status != "ok"} == failures
        assert all(rows[key].reason for key in failures)
    assert (tmp_path / "k600" / "videos" / "juggling").is_dir()
