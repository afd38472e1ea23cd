"""What several test modules share: the golden fixtures' location and a tiny transformer."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/original"
"""Golden outputs of the authors' code (../shared/fixtures/original beside the checkout)."""

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"golden fixtures of the original code not found at {FIXTURES}"
)

TINY_TRANSFORMER = {
    "codebooks": 2,
    "codebook_size": 8,
    "embedding_dim": 8,
    "model_dim": 12,
    "head_dim": 4,
    "heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
}
"""TransformerConfig fields of a model small enough to sample whole videos in a test."""
