"""`lvt sample`: complete priming frames from a PNG folder or a video file; clear errors. The
sample stage's GIFs and index at each video's own frame rate. Contact sheets of both."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import save_random_models, synthetic_videos
from PIL import Image, ImageSequence

from lvt import samples
from lvt.checkpoints import save_model
from lvt.cli import build_parser, main
from lvt.config import paper_model_configs
from lvt.data.dataset import VideoArraysWriter
from lvt.data.synthetic import write_synthetic_videos
from lvt.media import (
    PRIME_MARK,
    SHEET_GAP,
    SHEET_LABEL_WIDTH,
    SHEET_TEXT_HEIGHT,
    contact_sheet,
    mark_priming,
    write_gif,
)
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.stages import sample as sample_stage

VQ = replace(paper_model_configs()[0], channels=8, residual_channels=4, residual_blocks=1,
             codebooks=2, codebook_size=8)
TRANSFORMER = TransformerConfig(codebooks=2, codebook_size=8, kernel=(1, 3, 3), stride=(1, 2, 2),
                                embedding_dim=8, model_dim=12, head_dim=4, heads=2,
                                encoder_layers=1, decoder_layers=1, encoder_block=(1, 8, 8),
                                decoder_block=(1, 8, 8))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_random_models(tmp_path_factory.mktemp("models"), VQ, TRANSFORMER)


def sample(models: tuple[Path, Path], prime: Path, out: Path, *extra: str) -> int:
    vqvae, transformer = models
    return main(["sample", "--vqvae", str(vqvae), "--transformer", str(transformer),
                 "--prime", str(prime), "--frames", "3", "-o", str(out), *extra])


def write_pngs(folder: Path, count: int, size: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")


def test_completes_png_priming_frames(models, tmp_path: Path) -> None:
    write_pngs(tmp_path / "prime", 2, 64)
    assert sample(models, tmp_path / "prime", tmp_path / "out", "--samples", "2") == 0
    for k in range(2):
        frames = sorted((tmp_path / "out" / f"sample_{k}").glob("*.png"))
        assert [f.name for f in frames] == ["0.png", "1.png", "2.png"]
        assert np.asarray(Image.open(frames[0])).shape == (64, 64, 3)
        assert (tmp_path / "out" / f"sample_{k}.gif").stat().st_size > 0


def test_completes_a_video_file(models, tmp_path: Path) -> None:
    videos = synthetic_videos(train_videos=1, test_videos=1, seconds=1.0, window_start=0.0,
                              window_seconds=1.0, fps=10, width=96, height=80, shapes=2, seed=0)
    video = write_synthetic_videos(tmp_path, videos)[0].path
    assert sample(models, Path(video), tmp_path / "out") == 0
    assert len(list((tmp_path / "out" / "sample_0").glob("*.png"))) == 3


def test_wrong_frame_size_names_the_file(models, tmp_path: Path, capsys) -> None:
    write_pngs(tmp_path / "prime", 1, 48)
    assert sample(models, tmp_path / "prime", tmp_path / "out") != 0
    error = capsys.readouterr().err
    assert str(tmp_path / "prime" / "0.png") in error and "64x64" in error
    assert not (tmp_path / "out").exists()


def test_models_that_do_not_fit_name_the_file(models, tmp_path: Path, capsys) -> None:
    other = TransformerConfig(**{**TRANSFORMER.__dict__, "codebook_size": 16})
    mismatched = tmp_path / "other.pt"
    save_model(mismatched, "transformer", other, LatentVideoTransformer(other))
    write_pngs(tmp_path / "prime", 1, 64)
    assert sample((models[0], mismatched), tmp_path / "prime", tmp_path / "out") != 0
    assert str(mismatched) in capsys.readouterr().err


def gif_delays_ms(path: Path) -> list[int]:
    """The delay of every frame of a GIF as a reader sees it."""
    with Image.open(path) as gif:
        return [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]


@pytest.mark.parametrize(("fps", "frames", "expected"), [
    (29.97, 30, [30, 40, 30] * 10),  # 1 s for 30 frames; 33 ms each (GIF: 30) played 33 fps
    (2.3, 3, [430, 440, 430]),
    (60.0, 4, [20] * 4),  # browsers play delays under 20 ms at 100 ms
    (0.0, 2, [100, 100]),  # unknown rate
])
def test_gifs_keep_the_videos_pace(tmp_path: Path, fps: float, frames: int, expected) -> None:
    video = np.random.default_rng(0).integers(0, 255, (frames, 4, 4, 3), dtype=np.uint8)
    write_gif(video, tmp_path / "v.gif", fps)
    assert gif_delays_ms(tmp_path / "v.gif") == expected


def test_sample_stage_uses_each_videos_frame_rate(models, tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    with VideoArraysWriter(tmp_path / "test.h5", attrs={"fps": 30.0}) as frames, \
            VideoArraysWriter(tmp_path / "codes.h5", "codes", np.uint16) as codes:
        for index, fps in enumerate([30.0, 2.3]):
            frames.add(f"v{index}@0-1s", rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8),
                       fps=fps, source_size=(320, 240))
            codes.add(f"v{index}@0-1s", rng.integers(0, 8, (3, 2, 16, 16), dtype=np.uint16))
    settings = {"sample": {"frames": 3, "n_prime": 1, "batch_size": 2}}
    vqvae, transformer = models
    monkeypatch.setattr(sys, "argv", [
        "sample", "--settings", json.dumps(settings), "--vqvae", str(vqvae), "--transformer",
        str(transformer), "--codes", str(tmp_path / "codes.h5"), "--dataset",
        str(tmp_path / "test.h5"), "--out-dir", str(tmp_path / "out"), "--threads", "1"])
    sample_stage.cli()
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [(entry["video_id"], entry["fps"]) for entry in index["samples"]] == [
        ("v0@0-1s", 30.0), ("v1@0-1s", 2.3)]
    assert gif_delays_ms(tmp_path / "out" / index["samples"][1]["gif"]) == [430, 440, 430]
    assert sum(gif_delays_ms(tmp_path / "out" / index["samples"][0]["gif"])) == 100


PINNED_TO_ONE_CPU = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from lvt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_pinned(models: tuple[Path, Path], prime: Path, out: Path, *extra: str) -> str:
    vqvae, transformer = models
    result = subprocess.run(
        [sys.executable, "-c", PINNED_TO_ONE_CPU, "sample", "--vqvae", str(vqvae),
         "--transformer", str(transformer), "--prime", str(prime), "--frames", "3", "-o",
         str(out), *extra], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_threads_default_to_the_cpus_the_process_may_use(models, tmp_path: Path) -> None:
    write_pngs(tmp_path / "prime", 1, 64)
    assert "with 1 CPU thread(s)" in run_pinned(models, tmp_path / "prime", tmp_path / "a")
    assert "with 3 CPU thread(s)" in run_pinned(models, tmp_path / "prime", tmp_path / "b",
                                                "--threads", "3")


def test_frames_that_the_time_stride_does_not_divide_say_so(tmp_path: Path, capsys) -> None:
    strided = TransformerConfig(**{**TRANSFORMER.__dict__, "stride": (2, 2, 2)})
    vqvae = tmp_path / "vqvae.pt"
    save_model(vqvae, "vqvae", VQ, VQVAE(VQ))
    save_model(tmp_path / "strided.pt", "transformer", strided, LatentVideoTransformer(strided))
    write_pngs(tmp_path / "prime", 1, 64)
    assert sample((vqvae, tmp_path / "strided.pt"), tmp_path / "prime", tmp_path / "out") != 0
    assert ("3 frames: the number of frames must be a multiple of the time stride 2 of "
            f"{tmp_path / 'strided.pt'}") in capsys.readouterr().err


def test_an_empty_priming_video_says_empty_file(models, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.mp4").touch()
    assert sample(models, tmp_path / "empty.mp4", tmp_path / "out") != 0
    assert f"{tmp_path / 'empty.mp4'}: empty file" in capsys.readouterr().err


def test_the_documented_sample_command_parses() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "running.md").read_text()
    command = re.search(r"^lvt sample .*?(?<!\\)$", page, re.MULTILINE | re.DOTALL)
    assert command, "docs/running.md shows no `lvt sample` command"
    args = shlex.split(command[0].replace("\\\n", " "))
    parser = build_parser()
    subcommands = next(action for action in parser._actions
                       if isinstance(action, argparse._SubParsersAction))
    options = subcommands.choices["sample"]._option_string_actions
    # exact names: argparse would also take an abbreviation such as --out for --output
    assert [arg for arg in args if arg.startswith("-") and arg not in options] == []
    assert parser.parse_args(args[1:]).output == Path("my_sample/")


# ----------------------------------------------------------------------------------------------
# Contact sheets: the real clip's frames in a row, each sample's in a row below


def sheet_cell(sheet: np.ndarray, titles: int, row: int, column: int, size: int) -> np.ndarray:
    """The frame at `row` (counted over all groups) and `column` of a contact sheet of
    size×size frames, with `titles` group titles above that row."""
    top = SHEET_TEXT_HEIGHT * (1 + titles) + row * (size + SHEET_GAP)
    left = SHEET_LABEL_WIDTH + column * (size + SHEET_GAP)
    return sheet[top:top + size, left:left + size]


def test_contact_sheet_puts_each_video_in_a_row_with_priming_frames_marked() -> None:
    rng = np.random.default_rng(4)
    real, first, second = (rng.integers(0, 200, (4, 16, 16, 3), dtype=np.uint8) for _ in range(3))
    short = rng.integers(0, 200, (2, 16, 16, 3), dtype=np.uint8)
    sheet = contact_sheet([("video a", [("real", real), ("sample 0", first)]),
                           ("video b", [("real", second), ("source", short)])], n_prime=1)
    assert sheet.shape == (SHEET_TEXT_HEIGHT * 3 + 4 * 18, SHEET_LABEL_WIDTH + 4 * 18, 3)
    for titles, row, video in ((1, 0, real), (1, 1, first), (2, 2, second), (2, 3, short)):
        np.testing.assert_array_equal(sheet_cell(sheet, titles, row, 0, 16),
                                      mark_priming(video, 1)[0])
        assert (sheet_cell(sheet, titles, row, 0, 16)[0] == PRIME_MARK).all()
        for column in range(1, len(video)):  # predicted frames as they are
            np.testing.assert_array_equal(sheet_cell(sheet, titles, row, column, 16),
                                          video[column])
    assert (sheet_cell(sheet, 2, 3, 2, 16) == 255).all()  # a shorter row leaves blank cells
    labels, header = sheet[:, :SHEET_LABEL_WIDTH], sheet[:SHEET_TEXT_HEIGHT, SHEET_LABEL_WIDTH:]
    assert (labels < 255).any() and (header < 255).any()  # row labels, frame numbers
    with pytest.raises(ValueError, match="one frame size"):
        contact_sheet([("", [("real", real), ("sample 0", real[:, :8])])], n_prime=1)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_lvt_sample_writes_a_contact_sheet(models, tmp_path: Path) -> None:
    write_pngs(tmp_path / "prime", 2, 64)
    assert sample(models, tmp_path / "prime", tmp_path / "out", "--samples", "2") == 0
    sheet = read_png(tmp_path / "out" / "contact_sheet.png")
    assert sheet.shape[0] == SHEET_TEXT_HEIGHT * 2 + 3 * 66  # the source, then 2 samples
    source = [read_png(tmp_path / "prime" / f"{t}.png") for t in range(2)]
    np.testing.assert_array_equal(sheet_cell(sheet, 1, 0, 0, 64),
                                  mark_priming(source[0][None], 1)[0])
    np.testing.assert_array_equal(sheet_cell(sheet, 1, 0, 1, 64), source[1])  # read, not given
    assert (sheet_cell(sheet, 1, 0, 2, 64) == 255).all()  # the source ends after its 2 frames
    for k in range(2):
        np.testing.assert_array_equal(sheet_cell(sheet, 1, 1 + k, 2, 64),
                                      read_png(tmp_path / "out" / f"sample_{k}" / "2.png"))


def test_sample_stage_writes_contact_sheets_per_video_and_an_overview(
    models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    real = rng.integers(0, 255, (3, 3, 64, 64, 3), dtype=np.uint8)
    with VideoArraysWriter(tmp_path / "test.h5", attrs={"fps": 10.0}) as frames, \
            VideoArraysWriter(tmp_path / "codes.h5", "codes", np.uint16) as codes:
        for index, video in enumerate(real):
            frames.add(f"v{index}", video)
            codes.add(f"v{index}", rng.integers(0, 8, (3, 2, 16, 16), dtype=np.uint16))
    settings = {"sample": {"frames": 3, "n_prime": 1, "batch_size": 4, "samples_per_video": 2}}
    vqvae, transformer = models
    monkeypatch.setattr(samples, "OVERVIEW_VIDEOS", 2)
    monkeypatch.setattr(sys, "argv", [
        "sample", "--settings", json.dumps(settings), "--vqvae", str(vqvae), "--transformer",
        str(transformer), "--codes", str(tmp_path / "codes.h5"), "--dataset",
        str(tmp_path / "test.h5"), "--out-dir", str(tmp_path / "out"), "--threads", "1"])
    sample_stage.cli()
    out = tmp_path / "out"
    index = json.loads((out / "index.json").read_text())
    assert (index["contact_sheet"], index["contact_sheet_videos"]) == ("contact_sheet.png", 2)
    assert [entry["contact_sheet"] for entry in index["samples"]] == [
        f"v{v}/contact_sheet.png" for v in range(3) for _ in range(2)]
    for video in range(3):
        sheet = read_png(out / f"v{video}" / "contact_sheet.png")
        assert sheet.shape[0] == SHEET_TEXT_HEIGHT * 2 + 3 * 66  # the real clip, 2 samples
        np.testing.assert_array_equal(sheet_cell(sheet, 1, 0, 2, 64), real[video, 2])
        for k in range(2):
            np.testing.assert_array_equal(
                sheet_cell(sheet, 1, 1 + k, 2, 64),
                read_png(out / f"v{video}" / f"sample_{k}" / "2.png"))
    overview = read_png(out / "contact_sheet.png")
    assert overview.shape[0] == SHEET_TEXT_HEIGHT * 3 + 6 * 66  # the first 2 videos
    np.testing.assert_array_equal(sheet_cell(overview, 2, 3, 1, 64), real[1, 1])
    np.testing.assert_array_equal(overview[SHEET_TEXT_HEIGHT * 2 + 3 * 66:],
                                  read_png(out / "v1" / "contact_sheet.png")[SHEET_TEXT_HEIGHT:])
