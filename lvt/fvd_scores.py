"""FVD of the protocol's clips: I3D embeddings of clips given batch by batch, the distances per
trial between samples, real clips, reconstructions and the copy-last-frame baseline, and the
record of the protocol that goes next to them. The network and the distance are `lvt.fvd`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lvt.fvd import (
    I3D,
    NUM_CLASSES,
    RESIZE_METHOD,
    RESOLUTION,
    WEIGHTS_PACKAGE,
    WEIGHTS_SHA256,
    fvd,
    i3d_embeddings,
)
from lvt.protocol import Protocol


def embed(i3d: I3D, clips: Iterable[np.ndarray], batch_size: int) -> np.ndarray:
    """I3D embeddings (N, 400) of uint8 videos given batch by batch, through `fvd.preprocess`."""
    embeddings = [i3d_embeddings(batch, batch_size, model=i3d) for batch in clips]
    return np.concatenate(embeddings) if embeddings else np.zeros((0, NUM_CLASSES))


def _per_trial(reference: np.ndarray, generated: np.ndarray, trials: np.ndarray,
               name: str) -> dict[str, Any]:
    """FVD of each trial's generated clips against `reference`: mean, sample standard deviation
    (None for one trial) and values, under `name`."""
    values = [fvd(reference, generated[trials == t]) for t in np.unique(trials)]
    return {
        name: float(np.mean(values)),
        f"{name}_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        f"{name}_per_trial": values,
    }


def fvd_scores(
    real: np.ndarray,
    reconstructed: np.ndarray,
    generated: np.ndarray,
    trials: np.ndarray,
    copied: np.ndarray,
) -> dict[str, Any]:
    """FVD of the samples against the real clips and against the VQ-VAE reconstructions of the
    same clips (per trial; mean, sample standard deviation, values); of the reconstructions
    against the real clips (the tokenizer's floor); and of the copy-last-frame clips against the
    real clips (the baseline the samples must beat). All arguments are I3D embeddings."""
    return {
        **_per_trial(real, generated, trials, "fvd"),
        **_per_trial(reconstructed, generated, trials, "fvd_samples_vs_reconstructions"),
        "fvd_reconstructions_vs_real": fvd(real, reconstructed),
        "fvd_copy_last_frame": fvd(real, copied),
    }


def fvd_protocol(protocol: Protocol, vqvae_sha256: str, transformer_sha256: str) -> dict[str, Any]:
    """The protocol record that goes next to an FVD: clip counts, resizing, every file's hash."""
    return {
        **protocol.record(vqvae_sha256, transformer_sha256),
        "resize_method": RESIZE_METHOD,
        "resolution": RESOLUTION,
        "i3d": "Kinetics-400 I3D (TF-hub deepmind/i3d-kinetics-400/1) logits averaged over time",
        "i3d_weights": WEIGHTS_PACKAGE,
        "i3d_weights_sha256": WEIGHTS_SHA256,
    }
