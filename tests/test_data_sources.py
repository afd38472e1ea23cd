"""The source manifest and scanning a local folder of videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lvt.data.sources import (
    SourceRow,
    format_manifest,
    parse_manifest,
    read_manifest,
    scan_local,
    shard_rows,
    video_files,
    video_id_for,
    write_manifest,
)
from lvt.errors import InputError


def test_manifest_round_trip(tmp_path):
    rows = [
        SourceRow("a", "videos/a b.mp4", "train", 0.5, 3.25, "Playing Guitar"),
        SourceRow("b", "videos/b.mp4", "test", 0.0, 10.0).with_status(
            "failed", 'ffmpeg said:\n\t"Invalid data"'
        ),
    ]
    path = tmp_path / "manifest.tsv"
    write_manifest(path, rows)
    assert read_manifest(path) == rows
    assert rows[1].reason == 'ffmpeg said: "Invalid data"'
    header, first, _ = path.read_text().splitlines()
    assert header.split("\t") == [
        "video_id",
        "path",
        "split",
        "start",
        "end",
        "label",
        "status",
        "reason",
    ]
    assert first.split("\t") == [
        "a",
        "videos/a b.mp4",
        "train",
        "0.5",
        "3.25",
        "Playing Guitar",
        "ok",
        "",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("video_id\tpath\n", "missing columns"),
        (
            format_manifest([SourceRow("a", "a.mp4", "train", 0, 1)]).replace("train", "valid"),
            "line 2",
        ),
        (
            format_manifest([SourceRow("a", "a.mp4", "train", 0, 1)]).replace("\t0\t", "\tx\t"),
            "line 2",
        ),
        (format_manifest([SourceRow("a", "a.mp4", "train", 0, 1)] * 2), "duplicate video_id"),
    ],
)
def test_bad_manifests_name_the_file(text, message):
    with pytest.raises(InputError, match=f"sources.tsv.*{message}"):
        parse_manifest(text, "sources.tsv")


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'none.tsv'}: cannot read"):
        read_manifest(tmp_path / "none.tsv")


def test_video_ids_are_filesystem_safe():
    assert video_id_for("Playing Guitar/abc (1).mp4") == "Playing_Guitar__abc_1"
    assert video_id_for("train/x.y.mkv") == "train__x.y"


def copy(source: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_scan_local_labels_probes_and_skips_bad_files(small_videos, tmp_path):
    good = small_videos[0].path
    copy(good, tmp_path / "Juggling" / "one.mp4")
    copy(good, tmp_path / "Playing Guitar" / "two (1).MP4")
    copy(good, tmp_path / "Playing Guitar" / "deeper" / "three.mkv")
    corrupt = tmp_path / "Juggling" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 64 + Path(good).read_bytes()[64:])
    (tmp_path / "Juggling" / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("these are my notes\n")
    (tmp_path / "README.txt").write_text("not a video, ignored\n")
    copy(good, tmp_path / ".cache" / "hidden.mp4")

    rows = {row.video_id: row for row in scan_local(tmp_path, False, 0.3, seed=0)}
    assert sorted(rows) == [
        "Juggling__corrupt",
        "Juggling__empty",
        "Juggling__one",
        "Playing_Guitar__deeper__three",
        "Playing_Guitar__two_1",
        "notes",
    ]
    for video_id in ("Juggling__one", "Playing_Guitar__two_1", "Playing_Guitar__deeper__three"):
        row = rows[video_id]
        assert (row.status, row.start, row.reason) == ("ok", 0.0, "")
        assert row.end == pytest.approx(2.0)
    assert rows["Playing_Guitar__deeper__three"].label == "Playing Guitar"
    assert rows["Juggling__one"].label == "Juggling" and rows["notes"].label == ""
    assert rows["Juggling__one"].path == str(tmp_path / "Juggling" / "one.mp4")
    assert rows["Juggling__empty"].reason == "empty file"
    for video_id in ("Juggling__corrupt", "notes"):
        assert rows[video_id].status == "skipped"
        assert "not a readable video" in rows[video_id].reason
    usable_splits = [row.split for row in rows.values() if row.status == "ok"]
    assert sorted(usable_splits) == ["test", "train", "train"]


def test_scan_local_split_by_folder(small_videos, tmp_path):
    good = small_videos[0].path
    copy(good, tmp_path / "train" / "cats" / "a.mp4")
    copy(good, tmp_path / "train" / "b.mp4")
    copy(good, tmp_path / "test" / "cats" / "a.mp4")
    copy(good, tmp_path / "elsewhere" / "c.mp4")
    rows = scan_local(tmp_path, True, 0.5, seed=0)
    assert [(r.video_id, r.split, r.label) for r in rows] == [
        ("test__cats__a", "test", "cats"),
        ("train__b", "train", ""),
        ("train__cats__a", "train", "cats"),
    ]


def test_split_is_seeded_and_stable_when_videos_are_added(small_videos, tmp_path):
    for i in range(20):
        copy(small_videos[0].path, tmp_path / f"video{i:02d}.mp4")
    first = {row.video_id: row.split for row in scan_local(tmp_path, False, 0.25, seed=7)}
    assert first == {row.video_id: row.split for row in scan_local(tmp_path, False, 0.25, seed=7)}
    assert list(first.values()).count("test") == 5
    other_seed = {row.video_id: row.split for row in scan_local(tmp_path, False, 0.25, seed=8)}
    assert other_seed != first
    copy(small_videos[0].path, tmp_path / "video20.mp4")
    after = {row.video_id: row.split for row in scan_local(tmp_path, False, 0.25, seed=7)}
    assert sum(after[video_id] != split for video_id, split in first.items()) <= 1


def test_scan_local_fails_when_nothing_is_usable(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'absent'}: source folder does not exist"):
        scan_local(tmp_path / "absent", False, 0.1, 0)
    with pytest.raises(InputError, match=f"{tmp_path}: no video files"):
        scan_local(tmp_path, False, 0.1, 0)
    (tmp_path / "a.mp4").write_text("text\n")
    (tmp_path / "b.avi").write_bytes(b"")
    with pytest.raises(InputError, match=f"{tmp_path}: no usable video, all 2 skipped"):
        scan_local(tmp_path, False, 0.1, 0)


def test_video_files_are_the_files_the_scan_considers(tmp_path):
    for name in ("b/two.MKV", "a.mp4", "b/c/three.webm", "notes.txt", ".hidden.mp4",
                 ".cache/four.mp4", "b/{w}.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    listed = video_files(tmp_path)
    assert listed == [tmp_path / "a.mp4", tmp_path / "b" / "two.MKV", tmp_path / "b" / "{w}.mp4",
                      tmp_path / "b" / "c" / "three.webm"]
    with pytest.raises(InputError, match="all 4 skipped"):
        scan_local(tmp_path, False, 0.5, 0)
    with pytest.raises(InputError, match=f"{tmp_path / 'absent'}: source folder does not exist"):
        video_files(tmp_path / "absent")


def test_shards_split_the_ok_rows_and_carry_the_rest_once():
    rows = [SourceRow(f"v{i}", f"v{i}.mp4", "train" if i % 4 else "test", 0, 1) for i in range(9)]
    rows[5] = rows[5].with_status("skipped", "corrupt")
    train = [row for row in rows if row.split == "train"]
    shards = [shard_rows(rows, "train", shard, 2) for shard in range(2)]
    assert [row.video_id for row in shards[0]] == ["v1", "v3", "v7", "v5"]
    assert [row.video_id for row in shards[1]] == ["v2", "v6"]
    assert sorted(shards[0] + shards[1], key=train.index) == train
    assert shard_rows(rows, "test", 3, 4) == []
