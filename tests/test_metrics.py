"""SSIM against its written-out definition (lvt.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvt.metrics import gaussian_window, ssim

RNG = np.random.default_rng(0)


def ssim_by_windows(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al.'s SSIM written out: a weighted sum over each 11x11 window inside the image."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[2]):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                a, b = x[i:i + 11, j:j + 11, c], y[i:i + 11, j:j + 11, c]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                values.append((2 * ma * mb + c1) * (2 * cov + c2)
                              / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_written_out_definition() -> None:
    x = RNG.integers(0, 256, (2, 16, 14, 3)).astype(np.float64)
    y = np.clip(0.6 * x + 0.4 * RNG.integers(0, 256, x.shape), 0, 255)
    expected = [ssim_by_windows(a, b) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(ssim(x, y).numpy(), expected, rtol=1e-10)
    assert min(expected) > 0.2 and max(expected) < 0.95


def test_ssim_of_identical_images_is_one_and_of_flat_images_the_closed_form() -> None:
    x = RNG.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, rtol=1e-12)
    # flat images a and b: no variance, so SSIM = (2ab + C1) / (a² + b² + C1) with C1 = (0.01·255)²
    a, b = np.full((1, 11, 11, 1), 100.0), np.full((1, 11, 11, 1), 120.0)
    c1 = 6.5025
    assert ssim(a, b).item() == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))
    assert ssim(a, b).item() == pytest.approx(0.983611, abs=1e-6)
    # the data range scales the constants, not the images
    assert ssim(a / 255, b / 255, data_range=1.0).item() == pytest.approx(ssim(a, b).item())


def test_ssim_window_and_shape_checks() -> None:
    window = gaussian_window()
    assert window.shape == (11,) and window.sum().item() == pytest.approx(1.0)
    assert window.argmax().item() == 5 and torch.equal(window, window.flip(0))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((1, 10, 16, 3)), np.zeros((1, 10, 16, 3)))
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((1, 16, 16, 3)), np.zeros((2, 16, 16, 3)))
