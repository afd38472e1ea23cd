"""No lost work: `fvd_sample` and `extract_codes` write each finished batch, and a job killed with
SIGKILL resumes from its first unfinished batch with exactly the output of an uninterrupted run.
A progress file made from other inputs or settings, or a damaged one, is discarded."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER, TINY_VQVAE, save_random_models

from lvt.checkpoints import file_sha256, load_model
from lvt.config import paper_model_configs
from lvt.data.dataset import CHUNK_ITEMS, VideoArrays, VideoArraysWriter
from lvt.data.progress import (
    BATCHES_DONE,
    MADE_FROM,
    BatchedOutput,
    preallocate,
    progress_path,
)
from lvt.inference import encode_frames
from lvt.models.transformer import TransformerConfig
from lvt.protocol import protocol_from_settings

VQ = replace(paper_model_configs()[0], **TINY_VQVAE)
TRANSFORMER = TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 1, 1),
                                encoder_block=(1, 4, 4), decoder_block=(1, 4, 4))
# 2 test videos x 12 samples, one clip per batch: 24 batches of a 4-frame clip on a 4x4 grid
FVD = {"videos": 2, "n_prime": 1, "frames": 4, "samples_per_video": 12, "trials": 1,
       "temperature": 1.0, "seed": 3, "batch_size": 1, "shards": 2}
SHARD = 1


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models, test codes (3 videos, one too short) and frames (videos of 5 to 9 frames)."""
    folder = tmp_path_factory.mktemp("inputs")
    save_random_models(folder, VQ, TRANSFORMER)
    rng = np.random.default_rng(0)
    with VideoArraysWriter(folder / "codes.h5", "codes", np.uint16) as writer:
        for name, length in (("a", 5), ("short", 3), ("b", 4)):
            writer.add(name, rng.integers(0, 8, (length, 2, 4, 4)).astype(np.uint16))
    with VideoArraysWriter(folder / "frames.h5", "frames", np.uint8,
                           {"fps": 10.0, "size": 32}) as writer:
        for index, length in enumerate(rng.integers(5, 10, 40)):
            writer.add(f"v{index}", rng.integers(0, 256, (length, 32, 32, 3), dtype=np.uint8),
                       fps=[10.0, 29.97][index % 2], source_size=(320, 240 + index))
    return {"vqvae": folder / "vqvae.pt", "transformer": folder / "transformer.pt",
            "codes": folder / "codes.h5", "frames": folder / "frames.h5"}


def command(module: str, *args: str) -> list[str]:
    """The command line of a stage module, run as Snakemake runs it."""
    return [sys.executable, "-m", f"lvt.stages.{module}", *args]


def run(module: str, *args: str) -> str:
    """Run a stage to the end; its log."""
    done = subprocess.run(command(module, *args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


def kill_after_a_batch(module: str, out: Path, *args: str) -> int:
    """Start a stage, SIGKILL it as soon as it logs its first complete batch; the batches its
    progress file then holds, checked to be some but not all."""
    process = subprocess.Popen(command(module, *args), stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log = []
    for line in process.stderr:
        log.append(line)
        if " written to " in line:
            process.send_signal(signal.SIGKILL)
            break
    process.stderr.close()
    assert process.wait() == -signal.SIGKILL, "".join(log)
    assert not out.exists()
    with h5py.File(progress_path(out), "r") as file:
        done = int(file[BATCHES_DONE][0])
        batches = json.loads(file[MADE_FROM].asstr()[()])["batches"]
    assert 1 <= done < batches
    return done


def fvd_sample_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return ["--settings", json.dumps({"fvd": FVD}), "--vqvae", str(inputs["vqvae"]),
            "--transformer", str(inputs["transformer"]), "--codes", str(inputs["codes"]),
            "--shard", str(SHARD), "--out", str(out)]


def test_a_killed_fvd_sample_shard_resumes_with_the_same_samples(inputs, tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole" / "shard1.h5", tmp_path / "resumed" / "shard1.h5"
    assert "resuming" not in run("fvd_sample", *fvd_sample_args(inputs, whole))
    assert not progress_path(whole).exists()

    done = kill_after_a_batch("fvd_sample", resumed, *fvd_sample_args(inputs, resumed))
    log = run("fvd_sample", *fvd_sample_args(inputs, resumed))
    assert f"resuming {resumed} from batch {done + 1} of 12" in log
    assert f"batch {done} of 12 written" not in log and "batch 12 of 12 written" in log
    assert sorted(p.name for p in resumed.parent.iterdir()) == ["shard1.h5"]

    with h5py.File(whole, "r") as expected, h5py.File(resumed, "r") as found:
        assert sorted(found) == sorted(expected) == ["codes", "jobs", "protocol"]
        for name in ("codes", "jobs", "protocol"):
            assert np.array_equal(found[name][()], expected[name][()]), name
        assert found["codes"].shape == (12, 4, 2, 4, 4)
        # the second of two shards: the protocol's last 12 clips
        protocol = protocol_from_settings(FVD, VideoArrays(inputs["codes"], "codes"))
        np.testing.assert_array_equal(found["jobs"][:], protocol.jobs()[12:])


def per_video_codes(inputs: dict[str, Path], out: Path) -> None:
    """The codes file as extract_codes wrote it before its batches spanned videos: video by
    video, at most 256 frames at once, through VideoArraysWriter (with the videos' rates and
    sizes)."""
    vqvae, _ = load_model(inputs["vqvae"], "vqvae")
    frames = VideoArrays(inputs["frames"], "frames")
    attrs = {**frames.attrs, "vqvae_sha256": file_sha256(inputs["vqvae"]),
             "vqvae": str(inputs["vqvae"])}
    with VideoArraysWriter(out, "codes", np.uint16, attrs) as writer:
        for index, video_id in enumerate(frames.video_ids):
            video = frames.video(index)
            codes = np.concatenate([encode_frames(vqvae.eval(), video[start:start + 256],
                                                  torch.device("cpu"))
                                    for start in range(0, len(video), 256)])
            writer.add(video_id, codes.astype(np.uint16), fps=frames.fps[index],
                       source_size=tuple(frames.source_size[index]))


def extract_codes_args(inputs: dict[str, Path], out: Path, batch: int) -> list[str]:
    return ["--model", str(inputs["vqvae"]), "--dataset", str(inputs["frames"]),
            "--out", str(out), "--batch-frames", str(batch)]


def test_a_killed_extract_codes_resumes_with_the_same_codes(inputs, tmp_path: Path) -> None:
    out = tmp_path / "codes" / "test.h5"
    done = kill_after_a_batch("extract_codes", out, *extract_codes_args(inputs, out, 3))
    log = run("extract_codes", *extract_codes_args(inputs, out, 3))
    frames = VideoArrays(inputs["frames"], "frames")
    batches = -(-frames.num_items // 3)  # full batches of 3 across videos of 5 to 9 frames
    assert f"resuming {out} from batch {done + 1} of {batches}" in log
    assert f"batch {batches} of {batches} written" in log
    assert sorted(p.name for p in out.parent.iterdir()) == ["test.h5"]

    # exactly the codes file of an uninterrupted run that encoded video by video
    per_video_codes(inputs, tmp_path / "per_video.h5")
    expected, found = VideoArrays(tmp_path / "per_video.h5", "codes"), VideoArrays(out, "codes")
    assert found.attrs == expected.attrs
    assert found.attrs["vqvae_sha256"] == file_sha256(inputs["vqvae"])
    assert found.video_ids == expected.video_ids == frames.video_ids
    np.testing.assert_array_equal(found.offsets, expected.offsets)
    assert (found.item_shape, found.dtype) == (expected.item_shape, expected.dtype)
    every = np.arange(frames.num_items)
    np.testing.assert_array_equal(found.items(every), expected.items(every))
    np.testing.assert_array_equal(found.fps, frames.fps)
    np.testing.assert_array_equal(found.source_size, frames.source_size)
    with h5py.File(out, "r") as file:
        assert sorted(file) == ["codes", "fps", "offsets", "source_size", "video_ids"]
        assert file["codes"].chunks == (CHUNK_ITEMS, 2, 8, 8)


# ----------------------------------------------------------------------------------------------
# The progress file itself


def lay_out_rows(file: h5py.File) -> None:
    """An output of 8 rows of 3 int64 and an attribute."""
    preallocate(file, "rows", (8, 3), np.int64, 2)
    file.attrs["kind"] = "test"


def fill(out: Path, made_from: dict, stop_after: int | None = None) -> int:
    """Write the 4 batches of 2 rows (row i holds i) of `out`; with `stop_after`, stop as a
    killed job would once that many are done. The batches this run found done."""
    output = BatchedOutput(out, made_from, 4, lay_out_rows)
    with output:
        found = output.done
        for batch in range(output.done, 4):
            if batch == stop_after:
                return found  # leaving the block without an exception: an unfinished output
            output.write(2 * batch, {"rows": np.repeat(np.arange(2 * batch, 2 * batch + 2)[:, None],
                                                       3, axis=1)})
    return found


def stopped(out: Path, made_from: dict, stop_after: int) -> int:
    """`fill` stopped after `stop_after` batches; the batches its progress file holds."""
    with pytest.raises(RuntimeError, match=f"left with {stop_after} of 4 batches"):
        fill(out, made_from, stop_after)
    assert not out.exists()
    with h5py.File(progress_path(out), "r") as file:
        return int(file[BATCHES_DONE][0])


def check_rows(out: Path) -> None:
    """`out` is complete, holds exactly what `lay_out_rows` and `fill` put there, and no record."""
    assert not progress_path(out).exists()
    with h5py.File(out, "r") as file:
        assert sorted(file) == ["rows"] and dict(file.attrs) == {"kind": "test"}
        np.testing.assert_array_equal(file["rows"][:], np.repeat(np.arange(8)[:, None], 3, axis=1))
        assert file["rows"].maxshape == (None, 3)


def test_progress_resumes_only_what_was_made_from_the_same_inputs(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="lvt.data.progress")
    out = tmp_path / "out.h5"
    assert stopped(out, {"model": "a", "seed": 1}, 2) == 2
    # other settings: discarded, naming the key that differs, and started afresh
    other = {"model": "b", "seed": 1, "grid": (4, 4)}  # a tuple: stored as a JSON list
    assert stopped(out, other, 1) == 1
    assert (f"discarding {progress_path(out)}: made from other inputs or settings (differs in "
            "grid, model)") in caplog.text
    caplog.clear()
    assert fill(out, other) == 1
    assert f"resuming {out} from batch 2 of 4" in caplog.text
    assert "batch 1 of 4 written" not in caplog.text and "batch 4 of 4 written" in caplog.text
    check_rows(out)
    # a finished output is not resumed: the next run starts afresh
    caplog.clear()
    assert fill(out, other) == 0
    assert "resuming" not in caplog.text
    check_rows(out)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no record", "bad count"])
def test_a_damaged_progress_file_is_discarded(tmp_path: Path, caplog, damage: str) -> None:
    caplog.set_level(logging.INFO, logger="lvt.data.progress")
    out, partial = tmp_path / "out.h5", progress_path(tmp_path / "out.h5")
    stopped(out, {"model": "a"}, 2)
    if damage == "truncated":
        partial.write_bytes(partial.read_bytes()[:partial.stat().st_size // 2])
    elif damage == "garbage":
        partial.write_bytes(np.random.default_rng(0).bytes(partial.stat().st_size))
    elif damage == "empty":
        partial.write_bytes(b"")
    else:
        with h5py.File(partial, "r+") as file:
            if damage == "no record":
                del file["progress"]
            else:
                file[BATCHES_DONE][0] = 9
    assert fill(out, {"model": "a"}) == 0
    assert f"discarding {partial}: unreadable" in caplog.text
    assert "resuming" not in caplog.text
    check_rows(out)


def test_an_empty_output_and_a_batch_too_many(tmp_path: Path) -> None:
    out = tmp_path / "empty.h5"
    with BatchedOutput(out, {}, 0, lambda file: preallocate(file, "rows", (0, 3), np.int64, 2)
                       ) as output, pytest.raises(ValueError, match="already written"):
        output.write(0, {"rows": np.zeros((1, 3), np.int64)})
    with h5py.File(out, "r") as file:
        assert file["rows"].shape == (0, 3)
