"""VQ-VAE: residual rule, shapes, EMA codebook rule, losses, optimisers, sizes, distributed EMA."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from lvt.config import paper_model_configs, validate
from lvt.models.transformer import count_parameters
from lvt.models.vqvae import (
    VQVAE,
    ProductQuantizer,
    ResidualBlock,
    normalize,
    optimizers,
)

PAPER, _ = paper_model_configs()
SMALL = replace(PAPER, channels=16, residual_channels=8, codebooks=4, codebook_size=8)


def images(batch: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def ema_reference(quantizer: ProductQuantizer, z: torch.Tensor, codes: torch.Tensor) -> dict:
    """The EMA rule written out per codebook and per code, for comparison."""
    decay, eps, size = quantizer.decay, quantizer.eps, quantizer.size
    flat_z = z.permute(0, 2, 3, 1).reshape(-1, quantizer.codebooks, quantizer.dim)
    flat_codes = codes.permute(0, 2, 3, 1).reshape(-1, quantizer.codebooks)
    result = {"cluster_size": [], "embedding_sum": [], "weight": []}
    for g in range(quantizer.codebooks):
        one_hot = F.one_hot(flat_codes[:, g], size).float()
        n = decay * quantizer.cluster_size[g] + (1 - decay) * one_hot.sum(0)
        m = decay * quantizer.embedding_sum[g] + (1 - decay) * one_hot.T @ flat_z[:, g]
        total = n.sum()
        smoothed = (n + eps) / (total + size * eps) * total
        result["cluster_size"].append(n)
        result["embedding_sum"].append(m)
        result["weight"].append(m / smoothed[:, None])
    return {name: torch.stack(values) for name, values in result.items()}


def test_residual_block_skip_carries_relu_of_input():
    block = ResidualBlock(4, 3)
    x = torch.randn(2, 4, 5, 5)
    r = F.relu(x)
    torch.testing.assert_close(block(x), r + block.conv1x1(F.relu(block.conv3x3(r))))


def test_shapes_ranges_and_init():
    model = VQVAE(SMALL)
    x = images()
    codes = model.encode(x)
    assert codes.shape == (2, 4, 4, 4) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 8
    decoded = model.decode(codes)
    assert decoded.shape == x.shape and decoded.min() >= 0 and decoded.max() <= 1
    assert model.quantizer.lookup(codes).shape == (2, 16, 4, 4)
    assert model.quantizer.weight.abs().max() <= 1 / 8
    assert torch.equal(model.quantizer.embedding_sum, model.quantizer.weight)
    assert not model.quantizer.cluster_size.any()
    assert all(not m.bias.any() for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_nearest_neighbour_per_chunk():
    quantizer = VQVAE(SMALL).quantizer
    z = torch.randn(2, 16, 3, 3)
    codes = quantizer.assign(z)
    chunks = z.view(2, 4, 4, 3, 3)
    for g in range(4):
        vectors = chunks[:, g].permute(0, 2, 3, 1).reshape(-1, 4)
        expected = torch.cdist(vectors, quantizer.weight[g]).argmin(-1)
        assert torch.equal(codes[:, g].reshape(-1), expected)
    lookup = quantizer.lookup(codes).view(2, 4, 4, 3, 3)
    torch.testing.assert_close(lookup[1, 2, :, 0, 1], quantizer.weight[2, codes[1, 2, 0, 1]])


def test_training_forward_updates_ema_exactly_once_and_inference_never():
    torch.manual_seed(0)
    model = VQVAE(SMALL).eval()
    with torch.no_grad():
        model.quantizer.cluster_size.uniform_(0.5, 3)
    x = images()
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.decode(model.encode(x))
    for key, value in model.quantizer.state_dict().items():
        assert torch.equal(value, before[key])

    z_e = model.encoder(normalize(x)).detach()
    old_codes = model.quantizer.assign(z_e)
    reference = ema_reference(model.quantizer, z_e, old_codes)
    output = model(x)  # eval mode: the original updates the EMA in any mode
    assert torch.equal(output.codes, old_codes)
    for name, value in reference.items():
        torch.testing.assert_close(getattr(model.quantizer, name), value)
    # Commitment against the codebook after the update; decoder input from the one before.
    z_q_bar = model.quantizer.lookup(output.codes)
    torch.testing.assert_close(output.loss_commitment, F.mse_loss(z_e, z_q_bar))
    torch.testing.assert_close(output.loss, output.loss_reconstruction + output.loss_commitment)
    torch.testing.assert_close(
        output.loss_reconstruction, F.mse_loss(output.reconstruction, 2 * x - 1)
    )


def test_gradients_reach_the_encoder_through_the_straight_through_estimator():
    model = VQVAE(SMALL)
    model(images()).loss_reconstruction.backward()
    assert model.encoder.down1.weight.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in model.quantizer.buffers())


def test_perplexity_is_exp_entropy_of_batch_usage():
    model = VQVAE(SMALL)
    output = model(images(batch=3))
    for g in range(4):
        counts = torch.bincount(output.codes[:, g].flatten(), minlength=8).float()
        p = counts[counts > 0] / counts.sum()
        expected = torch.exp(-(p * p.log()).sum())
        torch.testing.assert_close(output.perplexity[g], expected)
    assert output.perplexity.shape == (4,)


def test_dead_code_restart():
    torch.manual_seed(0)
    config = replace(SMALL, dead_code_threshold=0.5)
    quantizer = VQVAE(config).quantizer
    z = torch.randn(2, 16, 4, 4)
    codes = torch.zeros(2, 4, 4, 4, dtype=torch.long)  # only code 0 is used
    quantizer.update(z, codes)
    assert (quantizer.cluster_size[:, 1:] == 0.5).all()
    candidates = z.view(2, 4, 4, 16).permute(1, 0, 3, 2).reshape(4, 32, 4)
    for g in range(4):
        for k in range(1, 8):  # every restarted code sits on one of the batch's vectors
            distance = (candidates[g] - quantizer.weight[g, k]).norm(dim=-1).min()
            assert distance < 1e-3
    plain = VQVAE(SMALL).quantizer
    plain.update(z, codes)
    assert (plain.cluster_size[:, 1:] == 0).all()


def test_optimizers_are_two_adams_without_the_codebook():
    model = VQVAE(SMALL)
    train = validate({})["vqvae"]["train"]
    opts = optimizers(model, lr=train["lr"], betas=tuple(train["betas"]))
    assert set(opts) == {"encoder", "decoder"}
    for name, opt in opts.items():
        assert isinstance(opt, torch.optim.Adam)
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
            3e-4,
            (0.9, 0.9),
            1e-8,
            0,
        )
        params = {id(p) for g in opt.param_groups for p in g["params"]}
        assert params == {id(p) for p in getattr(model, name).parameters()}


@pytest.mark.parametrize(
    ("blocks", "encoder", "decoder"), [(2, 1_777_024, 1_776_771), (4, 2_433_152, 2_432_899)]
)
def test_full_size_parameter_counts(blocks, encoder, decoder):
    with torch.device("meta"):
        model = VQVAE(replace(PAPER, residual_blocks=blocks))
    assert count_parameters(model.encoder) == encoder
    assert count_parameters(model.decoder) == decoder
    assert model.quantizer.weight.numel() == 4 * 512 * 64


def _distributed_ema(rank: int, world: int, init_file: str, z: torch.Tensor, codes, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        quantizer = VQVAE(SMALL).quantizer
        quantizer.update(z.chunk(world)[rank], codes.chunk(world)[rank])
        queue.put((rank, quantizer.weight.clone()))
    finally:
        dist.destroy_process_group()


def test_ema_statistics_are_summed_over_ranks(tmp_path):
    """Two ranks with half a batch each get the codebook of one process with the whole batch."""
    torch.manual_seed(0)
    single = VQVAE(SMALL).quantizer
    z = torch.randn(4, 16, 4, 4)
    codes = single.assign(z)
    single.update(z, codes)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    args = (2, str(tmp_path / "init"), z, codes, queue)
    processes = [context.Process(target=_distributed_ema, args=(r, *args)) for r in range(2)]
    for p in processes:
        p.start()
    results = dict(queue.get() for _ in processes)
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in range(2):
        torch.testing.assert_close(results[rank], single.weight)
