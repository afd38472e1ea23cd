"""`lvt sample`: complete priming frames from a PNG folder or a video file; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lvt.checkpoints import save_model
from lvt.cli import main
from lvt.data.synthetic import write_synthetic_videos
from lvt.models.transformer import TransformerConfig, VideoTransformer
from lvt.models.vqvae import VQVAE, VQVAEConfig

VQ = VQVAEConfig(channels=8, residual_channels=4, residual_blocks=1, codebooks=2, codebook_size=8)
TRANSFORMER = TransformerConfig(codebooks=2, codebook_size=8, kernel=(1, 3, 3), stride=(1, 2, 2),
                                embedding_dim=8, model_dim=12, head_dim=4, heads=2,
                                encoder_layers=1, decoder_layers=1, encoder_block=(1, 8, 8),
                                decoder_block=(1, 8, 8))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(folder / "vqvae.pt", "vqvae", VQ, VQVAE(VQ))
    save_model(folder / "transformer.pt", "transformer", TRANSFORMER, VideoTransformer(TRANSFORMER))
    return folder / "vqvae.pt", folder / "transformer.pt"


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
    video = write_synthetic_videos(tmp_path, 1, 1, 1.0, 0.0, 1.0, 10, 96, 80, 2, 0)[0].path
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
    save_model(mismatched, "transformer", other, VideoTransformer(other))
    write_pngs(tmp_path / "prime", 1, 64)
    assert sample((models[0], mismatched), tmp_path / "prime", tmp_path / "out") != 0
    assert str(mismatched) in capsys.readouterr().err
