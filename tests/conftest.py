"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY, copy_workflow, snakemake, synthetic_videos, write_config

from lvt.data.sources import SourceRow
from lvt.data.synthetic import write_synthetic_videos


@pytest.fixture(scope="session")
def small_videos(tmp_path_factory: pytest.TempPathFactory) -> list[SourceRow]:
    """Real H.264 videos: two train, one test; 2 s of 64x48 at 30 fps, a keyframe every second."""
    return write_synthetic_videos(
        tmp_path_factory.mktemp("videos"),
        synthetic_videos(
            train_videos=2,
            test_videos=1,
            seconds=2.0,
            window_start=0.5,
            window_seconds=1.0,
            fps=30,
            width=64,
            height=48,
            shapes=2,
            seed=0,
        ),
    )


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the whole workflow has run on the TINY configuration (tiny.yaml)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    snakemake(workdir, "--configfile", write_config(workdir / "tiny.yaml", TINY))
    return workdir
