"""The plain sampler: the original's random stream draw for draw, priming, causality, batching."""

from __future__ import annotations

import pytest
import torch
from helpers import FIXTURES, TINY_TRANSFORMER

from lvt.models.transformer import TransformerConfig, VideoTransformer, whole_video_logits
from lvt.original import import_transformer
from lvt.sampling import sample_codes


@pytest.fixture(scope="module")
def sampling_fixture() -> dict:
    return torch.load(FIXTURES / "vt_dsfvt_sampling_small.pt", weights_only=True)


def test_seeded_sample_reproduces_the_original(sampling_fixture):
    model, _ = import_transformer(sampling_fixture["state_dict"])
    inputs, outputs = sampling_fixture["inputs"], sampling_fixture["outputs"]
    calls = []
    torch.manual_seed(inputs["seed"])
    sample = sample_codes(
        model,
        inputs["prime_video"],
        inputs["n_prime"],
        temperature=inputs["temperature"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert torch.equal(sample, outputs["sample"])
    t, h, w = outputs["positions"].T
    assert torch.equal(sample[0, :, t, h, w].T, outputs["draws"])
    assert calls == [(i + 1, 3840) for i in range(3840)]

    with torch.no_grad():
        logits = whole_video_logits(model, sample)[0]  # (NC, NV, T, H, W)
    probs = torch.softmax(logits / inputs["temperature"], dim=1)[:, :, t, h, w]
    torch.testing.assert_close(probs.permute(2, 0, 1), outputs["probs"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "stride", "block", "frames"),
    [((3, 1, 1), (4, 1, 1), (1, 4, 4), 4), ((3, 3, 3), (2, 2, 2), (2, 2, 2), 4)],
)
def test_batched_sampling_keeps_priming_and_ignores_unsampled_content(
    kernel, stride, block, frames
):
    torch.manual_seed(0)
    config = TransformerConfig(
        **TINY_TRANSFORMER, kernel=kernel, stride=stride, encoder_block=block, decoder_block=block
    )
    model = VideoTransformer(config)
    prime = torch.randint(0, 8, (3, 2, frames, 4, 4))
    garbage = prime.clone()
    prime[:, :, 1:] = 0
    samples = []
    for video in (prime, garbage):
        generator = torch.Generator().manual_seed(5)
        samples.append(sample_codes(model, video, n_prime=1, generator=generator))
    # Content of frames ≥ n_prime is never visible before it is overwritten.
    assert torch.equal(samples[0], samples[1])
    assert torch.equal(samples[0][:, :, :1], prime[:, :, :1])
    assert samples[0].min() >= 0 and samples[0].max() < 8
    assert not torch.equal(samples[0][0], samples[0][1])  # examples draw independently


def test_near_zero_temperature_draws_the_argmax():
    torch.manual_seed(1)
    block = (1, 4, 4)
    config = TransformerConfig(
        **TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 1, 1), encoder_block=block,
        decoder_block=block,
    )
    model = VideoTransformer(config)
    prime = torch.randint(0, 8, (2, 2, 4, 4, 4))
    sample = sample_codes(model, prime, 1, temperature=1e-6, generator=torch.Generator())
    with torch.no_grad():
        greedy = whole_video_logits(model, sample).argmax(dim=2)
    assert torch.equal(sample[:, :, 1:], greedy[:, :, 1:])
