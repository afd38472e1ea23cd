"""Speed switches of the training step: defaults that keep CPU runs in float32, bf16 autocast."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER, TINY_VQVAE, train_options

from lvt.config import paper_model_configs, validate
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.stages.common import from_section
from lvt.training.acceleration import Acceleration, set_tf32
from lvt.training.loop import LoopSettings
from lvt.training.transformer import ClipSettings, RMSpropSettings, TransformerTraining
from lvt.training.vqvae import AdamSettings, VQVAETraining

CPU = torch.device("cpu")
BF16 = Acceleration(autocast_dtype=torch.bfloat16)


@pytest.mark.parametrize("section", ["vqvae", "transformer"])
def test_defaults_autocast_bfloat16_on_cuda_only(section: str) -> None:
    train = from_section(LoopSettings, validate({})[section]["train"])
    assert Acceleration.from_settings(train, CPU) == Acceleration(None, compile=False)
    assert Acceleration.from_settings(train, torch.device("cuda")) == BF16
    assert train.tf32 is True
    assert Acceleration.from_settings(replace(train, precision="bfloat16"), CPU) == BF16
    assert Acceleration.from_settings(replace(train, compile=True), CPU).compile


def test_set_tf32_switches_matrix_products_and_convolutions() -> None:
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        set_tf32(False)
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        set_tf32(True)
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision = before[0]
        torch.backends.cudnn.conv.fp32_precision = before[1]


def test_codebook_search_stays_float32_under_autocast() -> None:
    torch.manual_seed(0)
    config = replace(paper_model_configs()[0], channels=64, codebooks=2, codebook_size=512)
    quantizer = VQVAE(config).quantizer
    quantizer.weight.normal_()
    z_e = torch.randn(8, 64, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = quantizer.assign(z_e)
    assert torch.equal(codes, quantizer.assign(z_e))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    with VideoArraysWriter(folder / "frames.h5", "frames", np.uint8) as writer:
        writer.add("a", rng.integers(0, 255, (6, 16, 16, 3)).astype(np.uint8))
    with VideoArraysWriter(folder / "codes.h5", "codes", np.uint16) as writer:
        writer.add("a", rng.integers(0, 8, (4, 2, 4, 4)).astype(np.uint16))
    return folder


def vqvae_losses(data: Path, precision: str) -> list[float]:
    torch.manual_seed(0)
    model = VQVAE(replace(paper_model_configs()[0], **TINY_VQVAE))
    loop = train_options(LoopSettings, "vqvae", batch_size=4, seed=0, precision=precision)
    task = VQVAETraining(model, VideoArrays(data / "frames.h5"), loop,
                         train_options(AdamSettings, "vqvae", lr=1e-3, betas=(0.9, 0.9)))
    return [task.step()["loss"] for _ in range(3)]


def transformer_losses(data: Path, precision: str) -> list[float]:
    torch.manual_seed(0)
    model = LatentVideoTransformer(TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1),
                                               stride=(4, 1, 1), encoder_block=(1, 4, 4),
                                               decoder_block=(1, 4, 4)))
    loop = train_options(LoopSettings, "transformer", batch_size=2, seed=0, precision=precision)
    task = TransformerTraining(model, VideoArrays(data / "codes.h5", "codes"), loop,
                               ClipSettings(clip_frames=4, n_prime=1, reverse_time=False),
                               train_options(RMSpropSettings, "transformer", lr=1e-3))
    return [task.step()["loss"] for _ in range(3)]


@pytest.mark.parametrize("losses", [vqvae_losses, transformer_losses])
def test_bfloat16_autocast_trains_close_to_float32(losses, data: Path) -> None:
    plain, bf16 = losses(data, "float32"), losses(data, "bfloat16")
    assert plain != bf16  # the forward pass did run in bfloat16
    np.testing.assert_allclose(bf16, plain, rtol=2e-2)
