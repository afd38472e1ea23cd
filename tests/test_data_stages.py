"""The data stages end to end, as Snakemake runs them: synthesize -> trim -> frames -> crop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import synthetic_videos

import lvt
from lvt.data.dataset import VideoArrays
from lvt.data.sources import read_manifest, write_manifest
from lvt.data.synthetic import write_synthetic_videos
from lvt.stages import crop, scan_local, trim
from lvt.stages import frames as frames_stage

SETTINGS = json.dumps(
    {
        "source": {
            "synthetic": {
                "train_videos": 3,
                "test_videos": 1,
                "seconds": 1.5,
                "window_start": 0.5,
                "window_seconds": 0.8,
                "width": 80,
                "height": 48,
                "shapes": 2,
            }
        },
        "preprocess": {"shards": 2, "size": 32},
    }
)


def start(module: str, *args: str | Path) -> subprocess.Popen:
    """Run a stage module in a new process, as a Snakemake rule does."""
    command = [sys.executable, "-m", f"lvt.stages.{module}", "--settings", SETTINGS, *args]
    return subprocess.Popen(
        [str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(*processes: subprocess.Popen) -> None:
    for process in processes:
        output, _ = process.communicate()
        assert process.returncode == 0, output


def run_in_process(cli: Callable[[list[str]], None], *args: str | Path, settings: str = SETTINGS):
    """Run a stage's command line in this process (faster than a new one)."""
    cli(["--settings", settings, *map(str, args)])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every data stage on a tiny config; one source is missing, one was skipped.

    The train split runs through `python -m`; the test split, with an empty shard, in process.
    """
    root = tmp_path_factory.mktemp("pipeline")
    manifest = root / "sources" / "manifest.tsv"
    finish(start("synthesize", "--out-dir", root / "sources" / "videos", "--manifest", manifest))
    rows = read_manifest(manifest)
    gone = replace(rows[0], video_id="gone", path=str(root / "gone.mp4"))
    skipped = replace(rows[0], video_id="broken").with_status("skipped", "not a readable video")
    write_manifest(manifest, [*rows, gone, skipped])

    def clips(split: str, shard: int) -> Path:
        return root / "clips" / split / f"shard{shard}"

    def frames(split: str, shard: int) -> Path:
        return root / "frames" / split / f"shard{shard}.h5"

    def trim_args(split: str, shard: int) -> list:
        return [
            "--manifest",
            manifest,
            "--split",
            split,
            "--shard",
            shard,
            "--out-dir",
            clips(split, shard),
        ]

    def crop_args(split: str) -> list:
        data = root / "data"
        return [
            "--frames",
            frames(split, 0),
            frames(split, 1),
            "--out",
            data / f"{split}.h5",
            "--manifest",
            data / f"{split}.tsv",
        ]

    finish(*[start("trim", *trim_args("train", shard)) for shard in (0, 1)])
    finish(
        *[
            start("frames", "--clips", clips("train", s), "--out", frames("train", s))
            for s in (0, 1)
        ]
    )
    finish(start("crop", *crop_args("train")))
    for shard in (0, 1):
        run_in_process(trim.cli, *trim_args("test", shard))
        run_in_process(
            frames_stage.cli, "--clips", clips("test", shard), "--out", frames("test", shard)
        )
    run_in_process(crop.cli, *crop_args("test"))
    return root


def test_packed_datasets(pipeline):
    train = VideoArrays(pipeline / "data" / "train.h5")
    assert train.video_ids == [f"synthetic-train-000{i}@0.5-1.3s" for i in range(3)]
    assert list(train.lengths) == [24, 24, 24]
    assert train.item_shape == (32, 32, 3)
    assert train.attrs == {
        "fps": 30.0,
        "size": 32,
        "source": "synthetic",
        "split": "train",
        "lvt_version": lvt.__version__,
    }
    test = VideoArrays(pipeline / "data" / "test.h5")
    assert test.video_ids == ["synthetic-test-0000@0.5-1.3s"]
    assert test.video(0).shape == (24, 32, 32, 3)


def test_reports_list_every_video_with_its_fate(pipeline):
    train = {row.video_id: row for row in read_manifest(pipeline / "data" / "train.tsv")}
    assert list(train) == sorted(train)
    assert {video_id: row.status for video_id, row in train.items()} == {
        "broken": "skipped",
        "gone": "failed",
        "synthetic-train-0000": "ok",
        "synthetic-train-0001": "ok",
        "synthetic-train-0002": "ok",
    }
    assert train["gone"].reason.startswith("trim: ffmpeg could not trim it")
    assert train["broken"].reason == "not a readable video"
    assert train["synthetic-train-0001"].path.endswith("sources/videos/synthetic-train-0001.mp4")
    test = read_manifest(pipeline / "data" / "test.tsv")
    assert [(row.video_id, row.status) for row in test] == [("synthetic-test-0000", "ok")]


def test_an_empty_shard_is_valid(pipeline):
    empty = pipeline / "clips" / "test" / "shard1"
    assert sorted(path.name for path in empty.iterdir()) == ["manifest.tsv"]
    assert read_manifest(empty / "manifest.tsv") == []


def test_no_usable_video_fails_with_a_clear_message(pipeline, tmp_path, capsys):
    empty_shard = pipeline / "frames" / "test" / "shard1.h5"
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(
            crop.cli,
            "--frames",
            empty_shard,
            "--out",
            tmp_path / "test.h5",
            "--manifest",
            tmp_path / "test.tsv",
        )
    assert exit_info.value.code == 2
    assert f"{empty_shard}: no usable video left" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_scan_local_stage(small_videos, tmp_path, capsys):
    folder = Path(small_videos[0].path).parent
    settings = json.dumps({"source": {"kind": "local", "local": {"path": str(folder)}}})
    run_in_process(scan_local.cli, "--manifest", tmp_path / "m.tsv", settings=settings)
    rows = read_manifest(tmp_path / "m.tsv")
    assert sorted(row.video_id for row in rows) == sorted(row.video_id for row in small_videos)
    assert {row.split for row in rows} == {"train", "test"}
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(scan_local.cli, "--manifest", tmp_path / "n.tsv", settings="{}")
    assert exit_info.value.code == 2
    assert "config key source.local.path" in capsys.readouterr().err


def test_packed_datasets_record_each_videos_rate_and_source_size(pipeline):
    train = VideoArrays(pipeline / "data" / "train.h5")
    assert train.per_video_metadata
    assert list(train.fps) == [30.0, 30.0, 30.0]
    assert train.source_size.tolist() == [[80, 48]] * 3


def test_videos_of_different_rates_keep_their_own(tmp_path, capsys):
    rows = []
    for fps, width, seed in ((15, 80, 1), (10, 96, 2)):
        made = write_synthetic_videos(tmp_path / f"{fps}fps", synthetic_videos(
            train_videos=1, test_videos=0, seconds=1.0, window_start=0.0, window_seconds=1.0,
            fps=fps, width=width, height=48, shapes=1, seed=seed))
        rows += [replace(row, video_id=f"{row.video_id}-{fps}fps") for row in made]
    write_manifest(tmp_path / "manifest.tsv", rows)
    settings = json.dumps({"preprocess": {"shards": 1, "size": 32}})
    run_in_process(trim.cli, "--manifest", tmp_path / "manifest.tsv", "--split", "train",
                   "--shard", "0", "--out-dir", tmp_path / "clips", settings=settings)
    run_in_process(frames_stage.cli, "--clips", tmp_path / "clips", "--out", tmp_path / "shard.h5",
                   settings=settings)
    run_in_process(crop.cli, "--frames", tmp_path / "shard.h5", "--out", tmp_path / "train.h5",
                   "--manifest", tmp_path / "train.tsv", settings=settings)
    data = VideoArrays(tmp_path / "train.h5")
    assert data.video_ids == ["synthetic-train-0000-10fps@0-1s", "synthetic-train-0000-15fps@0-1s"]
    assert list(data.lengths) == [10, 15]
    assert list(data.fps) == [10.0, 15.0]
    assert data.source_size.tolist() == [[96, 48], [80, 48]]
    assert "different frame rates" in capsys.readouterr().err
