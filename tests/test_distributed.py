"""Data-parallel training: 2 CPU processes (gloo, under torchrun) take the steps of 1 process.

Run as a script under torchrun, this module is the worker of the library-level test; pytest
runs the tests.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER, TINY_VQVAE, train_options
from test_workflow import copy_workflow, snakemake

from lvt.checkpoints import load_model
from lvt.config import paper_model_configs
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.training.distributed import SINGLE_PROCESS, Distributed, process_group
from lvt.training.loop import METRICS_NAME, LoopSettings, TrainingTask, checkpoint_name, train
from lvt.training.transformer import ClipSettings, RMSpropSettings, TransformerTraining
from lvt.training.vqvae import AdamSettings, VQVAETraining

ROOT = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("test")
TRANSFORMER = TransformerConfig(  # with clips of 8 frames, 5 of them priming, slices with
    **TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 2, 2),  # a = 0 have no loss at all
    encoder_block=(2, 4, 4), decoder_block=(2, 4, 4),
)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
"""2 CPU processes, launched as the training rules launch one process per GPU."""
SEED = 1000  # in the transformer's first two steps, one rank's two slices have no loss
BATCH = 4
STEPS = 6
TOLERANCE = 1e-5


def vqvae_task(data: Path, distributed: Distributed, seed: int,
               dead_code_threshold: float = 0.0) -> VQVAETraining:
    torch.manual_seed(seed)
    model = VQVAE(replace(paper_model_configs()[0], **TINY_VQVAE,
                          dead_code_threshold=dead_code_threshold))
    return VQVAETraining(model, VideoArrays(data / "frames.h5"), loop(STEPS, seed, "vqvae"),
                         train_options(AdamSettings, "vqvae", lr=1e-4, betas=(0.9, 0.9)),
                         distributed)


def transformer_task(data: Path, distributed: Distributed, seed: int) -> TransformerTraining:
    torch.manual_seed(seed)
    model = LatentVideoTransformer(TRANSFORMER)
    return TransformerTraining(model, VideoArrays(data / "codes.h5", "codes"),
                               loop(STEPS, seed, "transformer"),
                               ClipSettings(clip_frames=8, n_prime=5, reverse_time=False),
                               train_options(RMSpropSettings, "transformer", lr=1e-3),
                               distributed)


TASKS: dict[str, Callable[[Path, Distributed, int], TrainingTask]] = {
    "vqvae": vqvae_task,
    "transformer": transformer_task,
    "vqvae_restarts": partial(vqvae_task, dead_code_threshold=0.5),
}


def loop(steps: int, seed: int = SEED, section: str = "vqvae") -> LoopSettings:
    return train_options(LoopSettings, section, steps=steps, batch_size=BATCH, seed=seed,
                         checkpoint_every=3, log_every=1)


def worker(data: Path, out: Path) -> None:
    """Under torchrun: train every task 3 steps, then continue to 6 with fresh tasks made with
    other seeds (so only resuming gives the right weights); save each rank's final state."""
    torch.set_num_threads(1)
    with process_group(torch.device("cpu")) as distributed:
        rank = distributed.rank
        for name, make in TASKS.items():
            # First part: each rank is given its own folder; only rank 0 may create or fill it.
            train(make(data, distributed, SEED), loop(3), out / name / f"rank{rank}", "f", LOG,
                  distributed)
            distributed.barrier()
            # Second part: every rank resumes from rank 0's checkpoint.
            task = make(data, distributed, SEED + 1 + rank)
            train(task, loop(STEPS), out / name / "rank0", "f", LOG, distributed)
            torch.save(task.state_dict(), out / f"{name}-rank{rank}.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames (16×16) and codes (2 codebooks of 8×8) of a few short videos."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    with VideoArraysWriter(folder / "frames.h5", "frames", np.uint8) as writer:
        for name, length in (("a", 5), ("b", 7)):
            base = rng.integers(0, 255, (length, 4, 4, 3)).astype(np.uint8)
            writer.add(name, base.repeat(4, axis=1).repeat(4, axis=2))
    with VideoArraysWriter(folder / "codes.h5", "codes", np.uint16) as writer:
        for name, length in (("a", 8), ("b", 9), ("c", 12)):
            writer.add(name, rng.integers(0, 8, (length, 2, 8, 8)).astype(np.uint16))
    return folder


def launch(*args: str | Path) -> subprocess.CompletedProcess:
    """Run a command with this checkout's `lvt` importable; capture its output."""
    return subprocess.run([*map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=key)


def metric_steps(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def two_processes(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ranks")
    result = launch(*TORCHRUN, Path(__file__), data, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.parametrize("name", ["vqvae", "transformer"])
def test_two_processes_take_the_steps_of_one(name: str, data: Path, two_processes: Path,
                                             tmp_path: Path) -> None:
    single = TASKS[name](data, SINGLE_PROCESS, SEED)
    train(single, loop(STEPS), tmp_path, "f", LOG)
    expected = single.state_dict()["model"]
    for rank in range(2):
        state = torch.load(two_processes / f"{name}-rank{rank}.pt", weights_only=True)
        assert_close(state["model"], expected, TOLERANCE)
        assert torch.equal(state["generator"], single.generator.get_state())


@pytest.mark.parametrize("name", list(TASKS))
def test_every_rank_holds_the_same_weights_and_codebooks(name: str, two_processes: Path) -> None:
    ranks = [torch.load(two_processes / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert_close(ranks[0]["model"], ranks[1]["model"], atol=0)


@pytest.mark.parametrize("name", list(TASKS))
def test_only_rank_0_writes_and_all_ranks_resume(name: str, two_processes: Path) -> None:
    assert not (two_processes / name / "rank1").exists()
    state_dir = two_processes / name / "rank0"
    assert sorted(p.name for p in state_dir.iterdir()) == [checkpoint_name(STEPS), METRICS_NAME]
    assert metric_steps(state_dir / METRICS_NAME) == list(range(1, STEPS + 1))
    assert torch.load(state_dir / checkpoint_name(STEPS), weights_only=True)["step"] == STEPS


def train_vqvae_stage(python: list[str], data: Path, out: Path, batch_size: int = BATCH):
    """The VQ-VAE training stage as the rule runs it, started by `python`."""
    settings = {"vqvae": {"model": TINY_VQVAE, "train": {
        "steps": 4, "batch_size": batch_size, "checkpoint_every": 2, "log_every": 1,
        "lr": 1e-4, "device": "cpu"}}}
    return launch(*python, "-m", "lvt.stages.train_vqvae", "--settings", json.dumps(settings),
                  "--dataset", data / "frames.h5", "--state-dir", out / "state",
                  "--model", out / "model.pt", "--metrics", out / "metrics.csv", "--threads", "2")


def test_the_stage_under_torchrun_writes_the_model_of_one_process(data: Path,
                                                                   tmp_path: Path) -> None:
    launchers = {"one": [sys.executable], "two": TORCHRUN}
    for name, python in launchers.items():
        result = train_vqvae_stage(python, data, tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es)" in result.stderr
    models = [load_model(tmp_path / name / "model.pt", "vqvae")[0] for name in launchers]
    assert_close(models[0].state_dict(), models[1].state_dict(), TOLERANCE)
    rows = [np.loadtxt(tmp_path / name / "metrics.csv", delimiter=",", skiprows=1)
            for name in launchers]
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-4)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(data: Path,
                                                                   tmp_path: Path) -> None:
    result = train_vqvae_stage(TORCHRUN, data, tmp_path, batch_size=3)
    assert result.returncode != 0
    assert "vqvae.train.batch_size: 3 does not split evenly over 2" in result.stderr
    assert not (tmp_path / "model.pt").exists()


def test_a_rule_with_several_gpus_starts_one_process_per_gpu(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path)
    plan = snakemake(workdir, "--dry-run", "--printshellcmds",
                     "--set-resources", "train_vqvae:gpu=2")
    shown = plan.stdout + plan.stderr
    assert ("python -m torch.distributed.run --standalone --nproc-per-node 2 "
            "-m lvt.stages.train_vqvae ") in shown
    assert "Shell command: python -m lvt.stages.train_transformer " in shown


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
