"""FVD per trial and the protocol record next to it (lvt.fvd_scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import protocol

from lvt import fvd
from lvt.fvd_scores import fvd_protocol, fvd_scores

RNG = np.random.default_rng(0)


def test_fvd_scores_per_trial_and_record() -> None:
    real = RNG.normal(size=(6, 5))
    reconstructed = real + RNG.normal(scale=0.1, size=real.shape)
    generated = RNG.normal(loc=0.5, size=(12, 5))
    trials = np.repeat([0, 1], 6)
    copied = real + RNG.normal(loc=1.0, size=real.shape)
    scores = fvd_scores(real, reconstructed, generated, trials, copied)
    per_trial = [fvd.fvd(real, generated[:6]), fvd.fvd(real, generated[6:])]
    assert scores["fvd_per_trial"] == pytest.approx(per_trial)
    assert scores["fvd"] == pytest.approx(np.mean(per_trial))
    assert scores["fvd_std"] == pytest.approx(np.std(per_trial, ddof=1))
    assert scores["fvd_samples_vs_reconstructions"] == pytest.approx(
        np.mean([fvd.fvd(reconstructed, generated[:6]), fvd.fvd(reconstructed, generated[6:])]))
    assert scores["fvd_reconstructions_vs_real"] == pytest.approx(fvd.fvd(real, reconstructed))
    assert scores["fvd_reconstructions_vs_real"] < scores["fvd"]
    assert scores["fvd_copy_last_frame"] == pytest.approx(fvd.fvd(real, copied))
    assert fvd_scores(real, reconstructed, generated, np.zeros(12, int), copied)["fvd_std"] is None

    record = fvd_protocol(protocol(), "1" * 64, "2" * 64)
    assert record["summary"] == "2 videos × 3 samples × 2 trials"
    assert (record["videos"], record["samples_per_video"], record["trials"]) == (2, 3, 2)
    assert record["generated_clips_per_trial"] == 6 and record["predicted_frames"] == 3
    assert record["resize_method"] == fvd.RESIZE_METHOD
    assert record["i3d_weights_sha256"] == fvd.WEIGHTS_SHA256
    assert (record["vqvae_sha256"], record["transformer_sha256"]) == ("1" * 64, "2" * 64)
    json.dumps({**scores, "protocol": record})
