"""The shared training loop: same seed -> same weights, exact resume, loud failures."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER, TINY_VQVAE, train_options
from test_checkpoints import flip_a_bit_in_a_tensor

from lvt.config import paper_model_configs
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.errors import InputError
from lvt.likelihood import bits_per_code
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.training.loop import LoopSettings, checkpoint_name, checkpoints, train
from lvt.training.transformer import (
    ClipSettings,
    HeldOutBits,
    RMSpropSettings,
    TransformerTraining,
    linear_decay,
)
from lvt.training.vqvae import AdamSettings, VQVAETraining

LOG = logging.getLogger("test")
TINY = replace(paper_model_configs()[0], **TINY_VQVAE)


def loop(section: str = "vqvae", **changes: object) -> LoopSettings:
    return train_options(LoopSettings, section, **changes)


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_frames(tmp_path_factory.mktemp("data") / "train.h5")


def write_frames(path: Path) -> Path:
    """Two short videos of smooth random 16×16 frames."""
    rng = np.random.default_rng(0)
    with VideoArraysWriter(path, "frames", np.uint8, {"fps": 10.0}) as writer:
        for name, length in (("a", 5), ("b", 7)):
            base = rng.integers(0, 255, (length, 4, 4, 3)).astype(np.uint8)
            writer.add(name, base.repeat(4, axis=1).repeat(4, axis=2))
    return path


def make_task(frames_file: Path) -> VQVAETraining:
    torch.manual_seed(1)
    return VQVAETraining(VQVAE(TINY), VideoArrays(frames_file), loop(batch_size=4, seed=7),
                         train_options(AdamSettings, "vqvae", lr=1e-3, betas=(0.9, 0.9)))


def run(task: VQVAETraining, steps: int, state_dir: Path, fingerprint: str = "f") -> Path:
    return train(task, loop(steps=steps, checkpoint_every=3, log_every=1), state_dir,
                 fingerprint, LOG)


def weights(task: VQVAETraining) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_same_seed_gives_the_same_weights(frames_file: Path, tmp_path: Path) -> None:
    first, second = make_task(frames_file), make_task(frames_file)
    run(first, 4, tmp_path / "a")
    run(second, 4, tmp_path / "b")
    assert_same(weights(first), weights(second))


def test_resume_continues_exactly(frames_file: Path, tmp_path: Path, caplog) -> None:
    straight = make_task(frames_file)
    run(straight, 6, tmp_path / "straight")

    interrupted = make_task(frames_file)
    run(interrupted, 3, tmp_path / "resumed")
    torch.manual_seed(12345)  # a new process starts with other random state
    resumed = make_task(frames_file)
    with caplog.at_level(logging.INFO):
        metrics = run(resumed, 6, tmp_path / "resumed")
    assert "resuming from" in caplog.text and "at step 3" in caplog.text
    assert_same(weights(straight), weights(resumed))
    steps = [int(line.split(",")[0]) for line in metrics.read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert checkpoints(tmp_path / "resumed") == [tmp_path / "resumed" / checkpoint_name(6)]
    state = torch.load(tmp_path / "resumed" / checkpoint_name(6), weights_only=True)
    assert state["step"] == 6


def test_damaged_and_foreign_checkpoints_are_skipped(frames_file: Path, tmp_path: Path,
                                                     caplog) -> None:
    straight = make_task(frames_file)
    run(straight, 9, tmp_path / "straight")

    state_dir = tmp_path / "resumed"
    run(make_task(frames_file), 3, state_dir)
    good = (state_dir / checkpoint_name(3)).read_bytes()
    run(make_task(frames_file), 4, tmp_path / "other", fingerprint="other")
    (tmp_path / "other" / checkpoint_name(4)).rename(state_dir / checkpoint_name(4))
    (state_dir / checkpoint_name(5)).write_bytes(b"\x00garbage")
    (state_dir / checkpoint_name(6)).write_bytes(good)
    flip_a_bit_in_a_tensor(state_dir / checkpoint_name(6))
    (state_dir / checkpoint_name(7)).write_bytes(good[: len(good) // 2])
    torch.manual_seed(12345)
    resumed = make_task(frames_file)
    with caplog.at_level(logging.INFO):
        metrics = run(resumed, 9, state_dir)
    for step, reason in ((7, "not a readable training checkpoint"),
                         (6, "contents do not match their digest"),
                         (5, "not a readable training checkpoint"),
                         (4, "it was made with other settings or data")):
        assert f"skipping {state_dir / checkpoint_name(step)}: {reason}" in caplog.text
    assert f"resuming from {state_dir / checkpoint_name(3)} at step 3" in caplog.text
    assert_same(weights(straight), weights(resumed))
    steps = [int(line.split(",")[0]) for line in metrics.read_text().splitlines()[1:]]
    assert steps == list(range(1, 10))
    assert checkpoints(state_dir) == [state_dir / checkpoint_name(9)]


def test_no_usable_checkpoint_starts_afresh(frames_file: Path, tmp_path: Path, caplog) -> None:
    straight = make_task(frames_file)
    run(straight, 3, tmp_path / "straight")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / checkpoint_name(3)).write_bytes(b"")
    again = make_task(frames_file)
    with caplog.at_level(logging.INFO):
        run(again, 3, tmp_path / "damaged")
    assert f"skipping {tmp_path / 'damaged' / checkpoint_name(3)}: " in caplog.text
    assert "no usable checkpoint" in caplog.text and "starting afresh" in caplog.text
    assert_same(weights(straight), weights(again))


def test_checkpoint_of_other_settings_is_ignored(frames_file: Path, tmp_path: Path,
                                                 caplog) -> None:
    run(make_task(frames_file), 3, tmp_path, fingerprint="old")
    with caplog.at_level(logging.INFO):
        run(make_task(frames_file), 3, tmp_path, fingerprint="new")
    assert "starting afresh" in caplog.text


class LinearRegression:
    """A real (tiny) task whose data hold a NaN, so its loss becomes NaN."""

    def __init__(self) -> None:
        self.weight = torch.zeros(3, requires_grad=True)
        self.optimizer = torch.optim.SGD([self.weight], lr=0.1)
        self.inputs = torch.tensor([[1.0, 2.0, 3.0], [float("nan"), 0.0, 1.0]])
        self.targets = torch.tensor([1.0, 2.0])

    def step(self) -> dict[str, float]:
        loss = torch.mean((self.inputs @ self.weight - self.targets) ** 2)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"weight": self.weight.detach().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.weight.data.copy_(state["weight"])


def test_non_finite_loss_stops_training(tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match="step 1"):
        train(LinearRegression(), loop(steps=5, checkpoint_every=1, log_every=1),
              tmp_path, "f", LOG)
    assert checkpoints(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# The transformer's held-out curve: bits per code on fixed test clips, logged as it trains

TRANSFORMER = TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 1, 1),
                                encoder_block=(1, 4, 4), decoder_block=(1, 4, 4))
HELD_OUT_LOOP = loop("transformer", steps=7, batch_size=2, seed=11, checkpoint_every=3,
                     log_every=2)


@pytest.fixture(scope="module")
def code_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Training and test codes (2 codebooks of 8 on a 4x4 grid); one test video is too short."""
    folder = tmp_path_factory.mktemp("codes")
    rng = np.random.default_rng(3)
    for split, lengths in (("train", (9, 12)), ("test", (8, 3, 10))):
        with VideoArraysWriter(folder / f"{split}.h5", "codes", np.uint16) as writer:
            for index, length in enumerate(lengths):
                writer.add(f"{split}{index}", rng.integers(0, 8, (length, 2, 4, 4), np.uint16))
    return folder / "train.h5", folder / "test.h5"


def transformer_task(codes: Path, clip_frames: int = 8, lr_decay: float = 0.0,
                     reverse_time: bool = False) -> TransformerTraining:
    torch.manual_seed(5)
    model = LatentVideoTransformer(TRANSFORMER)
    return TransformerTraining(model, VideoArrays(codes, "codes"), HELD_OUT_LOOP,
                               ClipSettings(clip_frames=clip_frames, n_prime=1,
                                            reverse_time=reverse_time),
                               train_options(RMSpropSettings, "transformer", lr=1e-2,
                                             lr_decay=lr_decay))


def test_reverse_time_plays_about_half_the_clips_backwards(code_files) -> None:
    train_codes, _ = code_files
    codes = VideoArrays(train_codes, "codes")
    videos = [torch.from_numpy(codes.clip(i, 0, int(n)).astype(np.int64)).permute(1, 0, 2, 3)
              for i, n in enumerate(codes.lengths)]

    def directions(task: TransformerTraining) -> list[str]:
        found = []
        for clip in task.clips():
            for video in videos:
                for start in range(video.shape[1] - clip.shape[1] + 1):
                    window = video[:, start:start + clip.shape[1]]
                    found += ["forward"] * bool(torch.equal(clip, window))
                    found += ["backward"] * bool(torch.equal(clip, window.flip(1)))
        return found

    forward_only = transformer_task(train_codes)
    assert set(sum((directions(forward_only) for _ in range(20)), [])) == {"forward"}
    both = transformer_task(train_codes, reverse_time=True)
    seen = sum((directions(both) for _ in range(20)), [])
    assert len(seen) == 40 and 10 <= seen.count("backward") <= 30


def test_linear_decay_ends_the_run_at_a_small_learning_rate() -> None:
    assert [linear_decay(8, 0.0)(step) for step in range(8)] == [1.0] * 8
    assert [linear_decay(8, 0.5)(step) for step in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]


def test_a_decaying_learning_rate_resumes_where_it_stopped(code_files) -> None:
    train_codes, _ = code_files
    whole = transformer_task(train_codes, lr_decay=0.5)
    rates = []
    for _ in range(HELD_OUT_LOOP.steps):
        rates.append(whole.optimizer.param_groups[0]["lr"])
        whole.step()
    assert rates == pytest.approx([1e-2 * f for f in (1, 1, 1, 1, 3 / 3.5, 2 / 3.5, 1 / 3.5)])

    first = transformer_task(train_codes, lr_decay=0.5)
    for _ in range(3):
        first.step()
    resumed = transformer_task(train_codes, lr_decay=0.5)
    resumed.load_state_dict(first.state_dict())
    for _ in range(HELD_OUT_LOOP.steps - 3):
        resumed.step()
    assert resumed.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"]
    assert_same(weights(whole), weights(resumed))


def held_out_bits(task: TransformerTraining, codes: Path, every: int = 3) -> HeldOutBits:
    return HeldOutBits(task, VideoArrays(codes, "codes"), videos=8, every=every)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_held_out_bits_are_logged_without_changing_training(code_files, tmp_path: Path) -> None:
    train_codes, test_codes = code_files
    plain = transformer_task(train_codes)
    train(plain, HELD_OUT_LOOP, tmp_path / "plain", "f", LOG)
    scored = transformer_task(train_codes)
    held_out = held_out_bits(scored, test_codes)
    assert held_out.videos == [0, 2]  # the fixed clips: every test video long enough
    metrics = train(scored, HELD_OUT_LOOP, tmp_path / "scored", "f", LOG, held_out=held_out)
    assert_same(weights(plain), weights(scored))  # evaluating draws from no training stream

    rows = csv_rows(metrics)
    # logged every 2 steps, held-out every 3 (its own row at step 3) and at the last step
    assert [(int(row["step"]), bool(row["held_out_bits_per_code"])) for row in rows] == [
        (2, False), (3, True), (4, False), (6, True), (7, True)]
    assert all(float(row["bits_per_code"]) > 0 for row in rows)
    final = bits_per_code(scored.model, VideoArrays(test_codes, "codes"), 8, 1, [0, 2],
                          torch.device("cpu"))["bits_per_code"]
    assert float(rows[-1]["held_out_bits_per_code"]) == pytest.approx(final)
    assert float(rows[1]["held_out_bits_per_code"]) != pytest.approx(final)


def test_held_out_curve_resumes_exactly(code_files, tmp_path: Path) -> None:
    train_codes, test_codes = code_files
    straight = transformer_task(train_codes)
    expected = csv_rows(train(straight, HELD_OUT_LOOP, tmp_path / "straight", "f", LOG,
                              held_out=held_out_bits(straight, test_codes)))
    first = transformer_task(train_codes)
    short = replace(HELD_OUT_LOOP, steps=3)  # as if killed after step 3
    train(first, short, tmp_path / "resumed", "f", LOG, held_out=held_out_bits(first, test_codes))
    torch.manual_seed(12345)
    resumed = transformer_task(train_codes)
    metrics = train(resumed, HELD_OUT_LOOP, tmp_path / "resumed", "f", LOG,
                    held_out=held_out_bits(resumed, test_codes))
    assert_same(weights(straight), weights(resumed))
    assert csv_rows(metrics) == expected


def test_held_out_needs_a_long_enough_test_video(code_files) -> None:
    train_codes, test_codes = code_files
    task = transformer_task(train_codes, clip_frames=11)
    with pytest.raises(InputError, match="test.h5: no held-out video has the 11 frames"):
        HeldOutBits(task, VideoArrays(test_codes, "codes"), videos=8, every=3)
