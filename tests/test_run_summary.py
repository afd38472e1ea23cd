"""The warnings shown at the end of a run: skipped and failed videos, mixed frame rates."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lvt.data.dataset import VideoArraysWriter
from lvt.data.sources import SourceRow, write_manifest
from lvt.run_summary import run_summary


def rows(split: str, ok: int, skipped: int = 0, failed: int = 0) -> list[SourceRow]:
    made = [SourceRow(f"{split}{i}", f"videos/{split}{i}.mp4", split, 0, 1) for i in range(ok)]
    made += [SourceRow(f"{split}-bad{i}", f"videos/{split}-bad{i}.mp4", split, 0, 1)
             .with_status("skipped", f"empty file {i}") for i in range(skipped)]
    made += [SourceRow(f"{split}-broken{i}", f"videos/{split}-broken{i}.mp4", split, 0, 1)
             .with_status("failed", "frames: " + "x" * 300) for i in range(failed)]
    return made


def write_dataset(path: Path, rates: list[float]) -> None:
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    with VideoArraysWriter(path, attrs={"fps": rates[0]}) as writer:
        for index, fps in enumerate(rates):
            writer.add(f"v{index}", frames, fps=fps, source_size=(64, 48))


def test_a_clean_run_has_no_summary(tmp_path: Path) -> None:
    assert run_summary(tmp_path) == ""
    (tmp_path / "data").mkdir()
    write_manifest(tmp_path / "data" / "train.tsv", rows("train", 3))
    write_dataset(tmp_path / "data" / "train.h5", [25.0, 25.0, 25.0])
    assert run_summary(tmp_path) == ""


def test_skipped_failed_videos_and_mixed_rates_are_summarised(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_manifest(data / "train.tsv", rows("train", 3, skipped=1, failed=1))
    write_manifest(data / "test.tsv", rows("test", 1, failed=5))
    write_dataset(data / "train.h5", [30.0, 29.97, 30.0])
    write_dataset(data / "test.h5", [2.3])
    lines = run_summary(tmp_path).splitlines()
    assert lines[0] == f"Warnings of the run in {tmp_path}:"
    assert lines[1] == (f"  train: 1 skipped and 1 failed of 5 videos (all listed in "
                        f"{data / 'train.tsv'})")
    assert lines[2] == "    videos/train-bad0.mp4: skipped, empty file 0"
    assert lines[3].startswith("    videos/train-broken0.mp4: failed, frames: xxx")
    assert len(lines[3]) < 200 and lines[3].endswith("…")
    assert lines[4].startswith("  test: 0 skipped and 5 failed of 6 videos")
    assert lines[8] == "    and 2 more"
    assert lines[9] == ("  videos of 3 frame rates (30 fps: 2, 29.97 fps: 1, 2.3 fps: 1); GIFs "
                        "and samples use each video's own, preprocess.fps resamples all to one")
    assert len(lines) == 10


def test_without_a_fresh_split_report_the_source_manifest_is_used(tmp_path: Path) -> None:
    (tmp_path / "sources").mkdir()
    (tmp_path / "data").mkdir()
    manifest = tmp_path / "sources" / "manifest.tsv"
    write_manifest(manifest, rows("train", 2, skipped=1) + rows("test", 1))
    summary = run_summary(tmp_path)
    assert f"train: 1 skipped and 0 failed of 3 videos (all listed in {manifest})" in summary
    assert "test:" not in summary
    stale = tmp_path / "data" / "train.tsv"
    write_manifest(stale, rows("train", 2))
    os.utime(stale, (0, 0))
    assert f"(all listed in {manifest})" in run_summary(tmp_path)
    write_manifest(stale, rows("train", 2))
    assert run_summary(tmp_path) == ""


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.tsv").write_text("not a manifest\n")
    (tmp_path / "data" / "train.h5").write_text("not HDF5\n")
    summary = run_summary(tmp_path)
    assert f"test: cannot summarise, {tmp_path / 'data' / 'test.tsv'}: not a source" in summary
    assert f"train: cannot summarise, {tmp_path / 'data' / 'train.h5'}: not an HDF5" in summary
