"""The real Snakemake workflow, run in a temporary directory on a tiny configuration."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import (
    RUN,
    SETTINGS,
    TINY,
    copy_workflow,
    snakemake,
    synthetic_videos,
    write_config,
)

from lvt.checkpoints import file_sha256
from lvt.data.dataset import CHUNK_ITEMS, VideoArrays
from lvt.data.synthetic import write_synthetic_videos
from lvt.training.loop import checkpoints

REPORTS = {"report_curves", "report_scores", "report_frame_scores", "report_samples"}
SCORING = {"fvd_sample_shard", "fvd", "frame_scores"}
RULES = ["synthesize", "trim", "frames", "crop", "train_vqvae", "extract_codes",
         "train_transformer", "sample", "evaluate", "fvd_sample", "fvd", "frame_scores",
         *sorted(REPORTS)]

pytestmark = pytest.mark.slow


def planned_jobs(workdir: Path, configfile: str, *targets: str) -> set[str]:
    """Rules a dry run would execute (for `targets`, else the default target)."""
    result = snakemake(workdir, "-n", *targets, "--configfile", configfile)
    jobs = {line.split()[1].rstrip(":") for line in result.stdout.splitlines()
            if line.startswith(("rule ", "localrule "))}
    return jobs - {"all"}


def test_every_stage_writes_its_outputs(finished_run: Path) -> None:
    results = finished_run / "results" / RUN
    with h5py.File(results / "data" / "test.h5") as frames, \
            h5py.File(results / "codes" / "test.h5") as codes:
        assert frames["frames"].shape[1:] == (64, 64, 3)
        assert frames["frames"].chunks == (CHUNK_ITEMS, 64, 64, 3)
        assert len(frames["video_ids"]) == 2
        assert codes["codes"].dtype == np.uint16
        # every frame is encoded, not just the first 16 as in the reference
        assert codes["codes"].shape == (frames["frames"].shape[0], 4, 16, 16)
        np.testing.assert_array_equal(codes["offsets"][:], frames["offsets"][:])
        assert codes.attrs["vqvae_sha256"] == file_sha256(results / "vqvae" / "model.pt")

    metrics = json.loads((results / "evaluation" / "metrics.json").read_text())
    assert metrics["vqvae"]["test_reconstruction"]["frames"] == frames_count(results)
    bits = metrics["transformer"]["test_bits"]
    assert bits["bits_per_code"] > 0 and 0 < bits["unigram_entropy_bits"] <= 4
    predicted = SETTINGS["evaluate"]["frames"] - SETTINGS["evaluate"]["n_prime"]
    assert bits["codes_scored"] == 2 * 4 * predicted * 16 * 16

    fvd = json.loads((results / "evaluation" / "fvd.json").read_text())
    protocol = fvd["protocol"]
    assert protocol["summary"] == "2 videos × 1 samples × 2 trials"
    assert (protocol["real_clips"], protocol["generated_clips_per_trial"]) == (2, 2)
    assert protocol["vqvae_sha256"] == file_sha256(results / "vqvae" / "model.pt")
    assert protocol["transformer_sha256"] == file_sha256(results / "transformer" / "model.pt")
    assert protocol["i3d_weights_sha256"] and "TF1" in protocol["resize_method"]
    assert fvd["fvd"] == pytest.approx(np.mean(fvd["fvd_per_trial"])) and fvd["fvd_std"] > 0
    for name in ("fvd", "fvd_samples_vs_reconstructions", "fvd_reconstructions_vs_real"):
        assert np.isfinite(fvd[name]) and fvd[name] >= 0
    frame_scores = json.loads((results / "evaluation" / "frame_scores.json").read_text())
    fvd_frames = range(SETTINGS["fvd"]["n_prime"], SETTINGS["fvd"]["frames"])
    assert frame_scores["per_step"]["frame"] == list(fvd_frames) and frame_scores["k"] == 2
    assert frame_scores["psnr_db_best_of_k"] >= frame_scores["psnr_db_mean"] > 0
    assert 0 < frame_scores["ssim_mean"] <= frame_scores["ssim_best_of_k"] <= 1
    assert frame_scores["protocol"]["summary"] == protocol["summary"]

    index = json.loads((results / "samples" / "index.json").read_text())
    frames = SETTINGS["sample"]["frames"]
    assert len(index["samples"]) == 2
    for entry in index["samples"]:
        assert len(list((results / "samples" / entry["frames"]).glob("*.png"))) == frames
        assert (results / "samples" / entry["gif"]).stat().st_size > 0
    with h5py.File(results / "samples" / "samples.h5") as samples:
        assert samples["codes"].shape == (2, frames, 4, 16, 16)

    for rule in RULES:
        assert list((results / "logs").rglob(f"{rule}*")), f"no log for {rule}"
        assert list((results / "benchmarks").rglob(f"{rule}*")), f"no benchmark for {rule}"
    assert not (results / "clips").exists() or not any((results / "clips").rglob("*.mp4"))
    assert not any((results / "frames").rglob("*.h5")), "temporary frame shards were kept"
    for model in ("vqvae", "transformer"):
        loaded = torch.load(results / model / "model.pt", weights_only=True)
        assert loaded["kind"] == model


def frames_count(results: Path) -> int:
    with h5py.File(results / "data" / "test.h5") as frames:
        return frames["frames"].shape[0]


def changed(section: str, group: str | None, key: str, value: object) -> dict:
    config = json.loads(json.dumps(TINY))
    target = config.setdefault(section, {})
    if group:
        target = target.setdefault(group, {})
    target[key] = value
    return config


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (changed("sample", None, "temperature", 0.9), {"sample", "report_samples"}),
        (changed("evaluate", None, "n_prime", SETTINGS["evaluate"]["n_prime"] + 1),
         {"evaluate", "fvd", "frame_scores", "report_scores", "report_frame_scores"}),
        (changed("fvd", None, "shards", 2), {*SCORING, "report_scores", "report_frame_scores"}),
        (changed("transformer", "train", "lr", 2e-3),
         {"train_transformer", "sample", "evaluate", *SCORING, *REPORTS}),
        (changed("vqvae", "train", "lr", 2e-3),
         {"train_vqvae", "extract_codes_split", "train_transformer", "sample", "evaluate",
          *SCORING, *REPORTS}),
    ],
)
def test_a_setting_reruns_exactly_the_stages_using_it(
    finished_run: Path, change: dict, expected: set[str]
) -> None:
    configfile = write_config(finished_run / "change.yaml", change)
    assert planned_jobs(finished_run, configfile) == expected
    assert planned_jobs(finished_run, "tiny.yaml") == set()


def training_processes(workdir: Path) -> list[int]:
    """PIDs of VQ-VAE training jobs running in `workdir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "lvt.stages.train_vqvae" in cmdline and (proc / "cwd").resolve() == workdir:
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def test_sigkill_during_training_then_rerun_resumes(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "workflow").resolve()
    config = changed("vqvae", "train", "steps", 1500)
    config["vqvae"]["train"]["checkpoint_every"] = 25
    configfile = write_config(workdir / "long.yaml", config)
    target = f"results/{RUN}/vqvae/model.pt"
    state_dir = workdir / "results" / RUN / "train_state" / "vqvae"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # the target goes before --configfile, which takes every following word as a config file
    first = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", target,
                              "--configfile", configfile], cwd=workdir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not checkpoints(state_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert checkpoints(state_dir), "training never wrote a checkpoint"
    for pid in training_processes(workdir):
        os.kill(pid, signal.SIGKILL)
    assert first.wait(timeout=60) != 0
    assert not (workdir / target).exists()

    snakemake(workdir, target, "--configfile", configfile)
    log = (workdir / "results" / RUN / "logs" / "train_vqvae.log").read_text()
    assert "resuming from" in log and "at step" in log
    assert (workdir / target).exists()


def test_local_source_skips_bad_files_and_lists_them(tmp_path: Path) -> None:
    videos = tmp_path / "my_videos"
    rows = write_synthetic_videos(tmp_path / "made", synthetic_videos(
        train_videos=3, test_videos=1, seconds=1.0, window_start=0.0, window_seconds=1.0, fps=15,
        width=80, height=64, shapes=2, seed=3))
    for index, row in enumerate(rows):
        label = videos / ("juggling" if index % 2 else "Playing Guitar")
        label.mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, label / f"clip{index}.mp4")
    (videos / "juggling" / "empty.mp4").write_bytes(b"")
    (videos / "juggling" / "notes.mp4").write_text("not a video")
    (videos / "juggling" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    workdir = copy_workflow(tmp_path / "workflow")
    config = {"run": "mine", "source": {"kind": "local",
                                       "local": {"path": str(videos), "test_fraction": 0.3}}}
    snakemake(workdir, "crop", "--configfile", write_config(workdir / "mine.yaml", config))

    results = workdir / "results" / "mine"
    manifest = (results / "sources" / "manifest.tsv").read_text()
    for bad in ("empty", "notes", "corrupt"):
        line = next(line for line in manifest.splitlines() if bad in line)
        status, reason = line.split("\t")[-2:]
        assert status == "skipped" and reason, line
    packed = []
    for split in ("train", "test"):
        with h5py.File(results / "data" / f"{split}.h5") as data:
            packed += list(data["video_ids"].asstr()[:])
            assert data.attrs["source"] == "local"
    assert len(packed) == 4
    assert any(video_id.startswith("Playing_Guitar") for video_id in packed)


def packed_rates(results: Path) -> dict[str, tuple[float, list[int]]]:
    """Frame rate and source size of every packed video, by source id."""
    packed = {}
    for split in ("train", "test"):
        data = VideoArrays(results / "data" / f"{split}.h5")
        for video_id, fps, size in zip(data.video_ids, data.fps, data.source_size, strict=True):
            packed[video_id.split("@")[0]] = (float(fps), size.tolist())
    return packed


def test_local_folder_changes_rerun_the_scan_and_warnings_are_summarised(tmp_path: Path) -> None:
    videos = tmp_path / "my videos"
    videos.mkdir()
    made = {fps: write_synthetic_videos(tmp_path / f"{fps}fps", synthetic_videos(
                train_videos=3, test_videos=0, seconds=1.0, window_start=0.0, window_seconds=1.0,
                fps=fps, width=80, height=64, shapes=1, seed=fps))
            for fps in (15, 10)}
    shutil.copy(made[15][0].path, videos / "a15.mp4")
    shutil.copy(made[15][1].path, videos / "b15.mp4")
    shutil.copy(made[10][0].path, videos / "c10.mp4")
    (videos / "broken.mp4").write_text("not a video")
    workdir = copy_workflow(tmp_path / "workflow")
    config = {"run": "fresh", "source": {"kind": "local", "local": {"path": str(videos)}}}
    configfile = write_config(workdir / "fresh.yaml", config)
    results = workdir / "results" / "fresh"

    first = snakemake(workdir, "crop", "--configfile", configfile)
    output = first.stdout + first.stderr
    assert "Warnings of the run in results/fresh:" in output
    assert f"{videos / 'broken.mp4'}: skipped, not a readable video" in output
    assert "videos of 2 frame rates (15 fps: 2, 10 fps: 1)" in output
    assert packed_rates(results) == {"a15": (15.0, [80, 64]), "b15": (15.0, [80, 64]),
                                     "c10": (10.0, [80, 64])}
    assert planned_jobs(workdir, configfile, "crop") == set()

    shutil.copy(made[10][1].path, videos / "d10.mp4")  # added
    shutil.copy(made[10][1].path, videos / "e{0}.mp4")  # Snakemake's wildcard syntax
    assert "scan_local" in planned_jobs(workdir, configfile, "crop")
    snakemake(workdir, "crop", "--configfile", configfile)
    assert set(packed_rates(results)) == {"a15", "b15", "c10", "d10", "e_0"}

    (videos / "a15.mp4").unlink()  # removed
    assert "scan_local" in planned_jobs(workdir, configfile, "crop")
    snakemake(workdir, "crop", "--configfile", configfile)
    assert set(packed_rates(results)) == {"b15", "c10", "d10", "e_0"}

    shutil.copyfile(made[10][2].path, videos / "b15.mp4")  # changed in place
    (videos / "broken.mp4").unlink()
    assert "scan_local" in planned_jobs(workdir, configfile, "crop")
    last = snakemake(workdir, "crop", "--configfile", configfile)
    assert packed_rates(results)["b15"] == (10.0, [80, 64])
    assert "Warnings of the run" not in last.stdout + last.stderr
    assert planned_jobs(workdir, configfile, "crop") == set()


def test_a_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    config = {"run": "gone", "source": {"kind": "local", "local": {"path": str(tmp_path / "no")}}}
    result = snakemake(workdir, "-n", "crop", "--configfile",
                       write_config(workdir / "gone.yaml", config), check=False)
    assert result.returncode != 0
    assert (f"config key source.local.path: {tmp_path / 'no'}: source folder does not exist"
            in result.stdout + result.stderr)
