"""Outputs under faults: one writer per output, the leftovers of killed writers, a full disk."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_bair import record, write_tar
from test_training_loop import assert_same, make_task, run, weights, write_frames

from lvt.atomic import remove_leftover_temporaries
from lvt.checkpoints import save_model
from lvt.config import paper_model_configs
from lvt.data.dataset import FrameShardWriter
from lvt.data.progress import BatchedOutput, preallocate
from lvt.data.sources import SourceRow, write_manifest
from lvt.errors import DiskSpaceError
from lvt.locks import hold_lock, lock_file
from lvt.models.vqvae import VQVAE
from lvt.stages.common import training_parser

HOLD_LOCK = """
import sys, time
from lvt.locks import hold_lock
with hold_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""

WRITE_BEYOND_THE_DISK = """
import sys
import numpy as np
from lvt.data.dataset import VideoArraysWriter
from lvt.stages.common import run_stage, stage_parser

def main(args, settings):
    with VideoArraysWriter(args.out, "frames", np.uint8, {}, (64, 64, 3)) as writer:
        for index in range(200):
            writer.add(f"v{index}", np.full((30, 64, 64, 3), index, np.uint8))

parser = stage_parser("writes 70 MiB of frames")
parser.add_output("--out")
run_stage(main, parser)
"""


def run_module(module: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def run_script(script: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def scores(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"psnr": 30.0}))
    return path


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, scores):
    out = tmp_path / "scores.html"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = run_module("lvt.stages.report_scores", "--scores", scores, "--out", out)
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 2
    assert f"{out}: is being written by pid {holder.pid} on " in blocked.stderr
    assert not out.exists()
    # The holder was killed: its lock file stays behind, its lock does not.
    assert lock_file(out).exists()
    done = run_module("lvt.stages.report_scores", "--scores", scores, "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.exists() and not lock_file(out).exists()


def test_a_lock_is_held_once(tmp_path):
    out = tmp_path / "out.h5"
    with hold_lock(out):
        blocked = run_script("import sys\nfrom lvt.locks import hold_lock\n"
                             "with hold_lock(sys.argv[1]): pass", out)
        assert "LockedError" in blocked.stderr
        assert f"{out}: is being written by pid " in blocked.stderr
    with hold_lock(out):
        pass


def test_training_locks_its_state_folder_and_outputs():
    parser = training_parser("train", "--dataset", "frames")
    args = parser.parse_args(["--dataset", "d.h5", "--state-dir", "state", "--model", "m.pt",
                              "--metrics", "m.csv"])
    assert parser.written_paths(args) == [Path("state"), Path("m.pt"), Path("m.csv")]


def test_a_stage_removes_what_killed_writers_of_its_outputs_left(tmp_path, scores):
    out = tmp_path / "scores.html"
    file_left = tmp_path / ".tmp-4242-scores.html"
    file_left.write_text("half a page")
    folder_left = tmp_path / ".tmp-4243-scores.html"
    folder_left.mkdir()
    (folder_left / "part").write_text("x")
    progress_left = tmp_path / ".tmp-4245-.partial-scores.html"
    progress_left.write_text("a progress file being laid out")
    someone_elses = tmp_path / ".tmp-4244-other.html"
    someone_elses.write_text("another output's")
    result = run_module("lvt.stages.report_scores", "--scores", scores, "--out", out)
    assert result.returncode == 0, result.stderr
    assert not file_left.exists() and not folder_left.exists() and not progress_left.exists()
    assert someone_elses.exists()
    assert f"removed {file_left}, left by a writer that was killed" in result.stderr


def test_a_training_state_folder_loses_its_leftover_temporaries(tmp_path):
    state = tmp_path / "train_state" / "vqvae"
    state.mkdir(parents=True)
    (state / ".tmp-77-checkpoint-10.pt").write_bytes(b"half")
    (state / "checkpoint-5.pt").write_bytes(b"kept")
    assert remove_leftover_temporaries(state) == [state / ".tmp-77-checkpoint-10.pt"]
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint-5.pt"]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (the tests run as root); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Leave only `leave` bytes free on `disk`."""
    with (disk / "ballast").open("wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(bytes(4096))
        except OSError as error:
            assert error.errno == errno.ENOSPC
        ballast.truncate(ballast.tell() - leave)


def test_a_full_disk_names_the_output_even_before_its_lock(small_disk, scores):
    fill(small_disk)
    out = small_disk / "scores.html"
    result = run_module("lvt.stages.report_scores", "--scores", scores, "--out", out)
    assert result.returncode == 2
    assert f"{out}: no space left on the device, not even for" in result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


def test_trim_on_a_full_disk_stops_instead_of_failing_the_videos(small_disk, small_videos,
                                                                 tmp_path):
    manifest = tmp_path / "manifest.tsv"
    write_manifest(manifest, small_videos)
    fill(small_disk, leave=8192)
    out = small_disk / "clips"
    result = run_module("lvt.stages.trim", "--settings", json.dumps({"preprocess": {"shards": 1}}),
                        "--manifest", manifest, "--split", "train", "--shard", 0, "--out-dir", out)
    assert result.returncode == 2, result.stderr
    assert ": no space left on the device after writing" in result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


def test_a_full_disk_under_hdf5_is_one_clear_error_and_no_crash(small_disk):
    out = small_disk / "data" / "train.h5"
    result = run_script(WRITE_BEYOND_THE_DISK, "--out", out)
    assert result.returncode == 2, result.stderr  # was -11: h5py crashed at exit
    assert f"{out}: no space left on the device after writing" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((small_disk / "data").iterdir()) == []


def test_a_full_disk_under_a_model_file_is_one_clear_error(small_disk):
    config, _ = paper_model_configs()
    model = VQVAE(config)
    assert sum(p.numel() for p in model.parameters()) * 4 > 1 << 20
    out = small_disk / "vqvae" / "model.pt"
    with pytest.raises(DiskSpaceError, match=f"{out}: no space left on the device"):
        save_model(out, "vqvae", config, model)
    assert list((small_disk / "vqvae").iterdir()) == []


def test_crop_checks_the_free_space_before_it_writes(small_disk, tmp_path):
    rows = [SourceRow(f"v{index}", f"v{index}.mp4", "train", 0.0, 1.0) for index in range(4)]
    shard = tmp_path / "shard0.h5"
    with FrameShardWriter(shard, 64) as writer:
        for row in rows:
            writer.add(row, np.zeros((30, 64, 64, 3), np.uint8), 30.0)
    out = small_disk / "train.h5"
    result = run_module("lvt.stages.crop", "--settings", json.dumps({"preprocess": {"size": 64}}),
                        "--frames", shard, "--out", out, "--manifest", small_disk / "train.tsv")
    assert result.returncode == 2
    assert f"{out}: needs about 1.4 MiB for 120 frames of 64x64, but only" in result.stderr
    assert "no space left" not in result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == []


def test_a_full_disk_keeps_the_last_good_checkpoint(small_disk):
    frames = write_frames(small_disk.parent / "frames.h5")
    state = small_disk / "train_state"
    run(make_task(frames), 3, state)
    fill(small_disk)
    with pytest.raises(DiskSpaceError, match=f"{state / 'checkpoint-6.pt'}: no space left"):
        run(make_task(frames), 6, state)
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint-3.pt", "metrics.csv"]
    (small_disk / "ballast").unlink()
    resumed, uninterrupted = make_task(frames), make_task(frames)
    run(resumed, 6, state)
    run(uninterrupted, 6, small_disk.parent / "uninterrupted")
    assert_same(weights(resumed), weights(uninterrupted))


WRITE_PLAINLY_BEYOND_THE_DISK = """
from lvt.stages.common import run_stage, stage_parser

def main(args, settings):
    with open(args.out / "part", "wb", buffering=0) as sink:
        for _ in range(300):
            sink.write(bytes(4096))

parser = stage_parser("writes 1.2 MiB into a folder, not through atomic_path")
parser.add_output("--out")
run_stage(main, parser)
"""


def test_a_full_disk_without_a_file_name_names_the_stage_outputs(small_disk):
    out = small_disk / "folder"
    out.mkdir()
    result = run_script(WRITE_PLAINLY_BEYOND_THE_DISK, "--out", out)
    assert result.returncode == 2, result.stderr
    assert f"{out}: no space left on the device while writing it" in result.stderr
    assert "Traceback" not in result.stderr


def test_frames_checks_the_free_space_before_it_decodes(small_disk, small_videos, tmp_path):
    manifest = tmp_path / "manifest.tsv"
    write_manifest(manifest, small_videos)
    clips = tmp_path / "clips"
    settings = json.dumps({"preprocess": {"shards": 1, "size": 64}})
    trimmed = run_module("lvt.stages.trim", "--settings", settings, "--manifest", manifest,
                         "--split", "train", "--shard", 0, "--out-dir", clips)
    assert trimmed.returncode == 0, trimmed.stderr
    fill(small_disk, leave=256 << 10)
    out = small_disk / "shard0.h5"
    result = run_module("lvt.stages.frames", "--settings", settings, "--clips", clips,
                        "--out", out)
    assert result.returncode == 2
    # two train videos, 1 s windows at 30 fps
    assert f"{out}: needs about 720.0 KiB for about 60 frames of 64x64, but only " \
        in result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


def test_batched_outputs_check_the_free_space_of_their_whole_layout(small_disk):
    out = small_disk / "codes.h5"

    def lay_out(file):
        preallocate(file, "codes", (1000, 4, 16, 16), np.uint16, 16)

    with (pytest.raises(DiskSpaceError, match=r"needs about 2\.0 MiB for its codes "
                                              r"\(1000 x 4 x 16 x 16 uint16\), but only"),
          BatchedOutput(out, {}, 10, lay_out)):
        pass
    assert sorted(p.name for p in small_disk.iterdir()) == []


def test_bair_extract_checks_the_free_space_before_it_unpacks(small_disk, tmp_path):
    tar = tmp_path / "bair.tar"
    write_tar(tar, {"softmotion30_44k/train/traj_0_to_255.tfrecords": record(bytes(2 << 20))})
    out = small_disk / "softmotion30_44k"
    result = run_module("lvt.stages.bair_extract", "--tar", tar, "--out-dir", out)
    assert result.returncode == 2
    assert f"{out}: needs about 2.0 MiB for the TFRecord files unpacked from {tar}" \
        in result.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == []
