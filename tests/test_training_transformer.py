"""The transformer's training examples: one random slice per clip, its context, target and
ignore mask."""

from __future__ import annotations

import torch
from test_transformer import small_config

from lvt.models import transformer as vt
from lvt.training.transformer import random_slices, training_batch


def test_random_slices_rules():
    generator = torch.Generator().manual_seed(0)
    frames = random_slices(500, (16, 1, 1), n_prime=1, generator=generator)
    assert {abc[0] for abc in frames} == set(range(1, 16))
    assert {abc[1:] for abc in frames} == {(0, 0)}
    subscale = random_slices(500, (4, 2, 2), n_prime=1, generator=generator)
    assert set(subscale) == {vt.slice_abc(i, (4, 2, 2)) for i in range(16)}
    several_frames = random_slices(500, (4, 1, 1), n_prime=1, generator=generator, frames=16)
    assert {abc[0] for abc in several_frames} == set(range(4))
    again = random_slices(5, (4, 2, 2), 1, torch.Generator().manual_seed(3))
    assert again == random_slices(5, (4, 2, 2), 1, torch.Generator().manual_seed(3))


def test_training_batch_per_example_slices_and_ignore_mask():
    config = small_config((5, 3, 3), (4, 2, 2))
    clips = torch.randint(0, 6, (2, 3, 8, 4, 4))
    slices = [(0, 1, 0), (3, 1, 1)]
    context, target, ignore, index = training_batch(clips, slices, config, n_prime=2)
    assert torch.equal(index, torch.tensor([2, 15]))
    assert torch.equal(target[1], clips[1, :, 3::4, 1::2, 1::2])
    assert torch.equal(context[0], vt.slice_context(clips[:1], slices[0], config)[0])
    # Slice (0, ·, ·) holds frames 0 and 4: only frame 0 is a priming frame; slice (3, ·, ·) none.
    assert ignore.shape == (2, 1, 2, 2, 2)
    assert ignore[0, 0, 0].all() and not ignore[0, 0, 1].any() and not ignore[1].any()
