"""Sampling: the plain sampler follows the original's random stream draw for draw, keeps the
priming frames, hides unsampled content, batches; the fast sampler draws exactly what the plain
full-recompute sampler draws."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from helpers import FIXTURES, TINY_TRANSFORMER

from lvt.models.transformer import LatentVideoTransformer, TransformerConfig, whole_video_logits
from lvt.original import import_transformer
from lvt.sampling import sample_codes, sample_codes_fast


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
    model = LatentVideoTransformer(config)
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
    model = LatentVideoTransformer(config)
    prime = torch.randint(0, 8, (2, 2, 4, 4, 4))
    sample = sample_codes(model, prime, 1, temperature=1e-6, generator=torch.Generator())
    with torch.no_grad():
        greedy = whole_video_logits(model, sample).argmax(dim=2)
    assert torch.equal(sample[:, :, 1:], greedy[:, :, 1:])


# ----------------------------------------------------------------------------------------------
# The fast sampler

TINY = {**TINY_TRANSFORMER, "decoder_layers": 2}
VARIANTS = {  # kernel, stride, block; on 16 × 8 × 8 code videos
    "DSFVT": ((7, 1, 1), (16, 1, 1), (1, 8, 8)),  # slice (1, 8, 8) = one block
    "DSFVT-4-blocks": ((7, 1, 1), (16, 1, 1), (1, 4, 4)),  # blocks not contiguous in raster
    "DSSVT": ((1, 3, 3), (1, 2, 2), (4, 4, 4)),  # slice (16, 4, 4) = 4 blocks
    "DSTSVT": ((5, 3, 3), (4, 2, 2), (4, 4, 4)),  # slice (4, 4, 4) = one block
}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight over shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def record_logits(model: LatentVideoTransformer) -> list[torch.Tensor]:
    """Make the model's channel predictor append every codebook's logits to the returned list."""
    calls: list[torch.Tensor] = []
    predictor = model.predictor
    logits_of = type(predictor).codebook_logits

    def recording(hidden: torch.Tensor, previous: torch.Tensor, k: int) -> torch.Tensor:
        logits = logits_of(predictor, hidden, previous, k)
        calls.append(logits)
        return logits

    predictor.codebook_logits = recording
    return calls


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("n_prime", "temperature"), [(1, 1.0), (5, 0.8)])
def test_fast_sampler_draws_what_the_plain_one_draws(variant, n_prime, temperature):
    kernel, stride, block = VARIANTS[variant]
    torch.manual_seed(0)
    config = TransformerConfig(
        **TINY, kernel=kernel, stride=stride, encoder_block=block, decoder_block=block
    )
    model = LatentVideoTransformer(config).eval()
    with torch.no_grad():  # make biases and relative tables non-zero
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    prime = torch.randint(0, 8, (2, 2, 16, 8, 8))
    samples, logits, progress = [], [], []
    for sampler in (sample_codes, sample_codes_fast):
        logits.append(record_logits(model))
        progress.append([])
        samples.append(
            sampler(model, prime, n_prime, temperature=temperature,
                    generator=torch.Generator().manual_seed(3),
                    progress=lambda done, total, calls=progress[-1]: calls.append((done, total)))
        )
    assert torch.equal(samples[0], samples[1])
    assert torch.equal(samples[1][:, :, :n_prime], prime[:, :, :n_prime])
    positions = (16 - n_prime) * 64
    assert len(logits[1]) == positions * config.codebooks
    torch.testing.assert_close(logits[1], logits[0], atol=1e-4, rtol=0)
    assert progress[0] == progress[1] == [(i + 1, positions) for i in range(positions)]


@pytest.mark.usefixtures("one_thread")
def test_fast_sampler_reproduces_the_original():
    fixture = torch.load(FIXTURES / "vt_dsfvt_sampling_small.pt", weights_only=True)
    model, _ = import_transformer(fixture["state_dict"])
    inputs, outputs = fixture["inputs"], fixture["outputs"]
    logits = record_logits(model)
    torch.manual_seed(inputs["seed"])
    sample = sample_codes_fast(
        model, inputs["prime_video"], inputs["n_prime"], temperature=inputs["temperature"]
    )
    probs = torch.softmax(torch.cat(logits) / inputs["temperature"], dim=1)
    torch.testing.assert_close(probs.view(outputs["probs"].shape), outputs["probs"],
                               atol=1e-5, rtol=1e-5)
    assert torch.equal(sample, outputs["sample"])
    t, h, w = outputs["positions"].T
    assert torch.equal(sample[0, :, t, h, w].T, outputs["draws"])
