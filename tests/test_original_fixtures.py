"""Reproduce the golden outputs of the authors' code, loading every fixture through our importer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FIXTURES, ROOT

from lvt.config import validate
from lvt.models import transformer as vt
from lvt.models.vqvae import normalize, optimizers
from lvt.original import import_transformer, import_vqvae, read_original
from lvt.training.transformer import training_batch

TOL = {"atol": 1e-5, "rtol": 1e-5}
TRANSFORMER_FILES = ["vt_dsfvt_small.pt", "vt_dssvt_small.pt"]


def load(name: str) -> dict:
    return torch.load(FIXTURES / name, weights_only=True)


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, **TOL)


def test_fixtures_ship_with_the_repository():
    """The golden files live inside the checkout, so a fresh clone runs every fidelity test."""
    assert FIXTURES.is_relative_to(ROOT)
    expected = {"README.md", "vqvae_small.pt", "vt_dsfvt_sampling_small.pt", *TRANSFORMER_FILES}
    assert expected <= {path.name for path in FIXTURES.iterdir()}


# --------------------------------------------------------------------------------------------
# VQ-VAE


@pytest.fixture(scope="module")
def vqvae_fixture() -> dict:
    return load("vqvae_small.pt")


def import_fixture_vqvae(fixture: dict, net_c: dict | None = None):
    state = fixture["state_dict"]
    return import_vqvae(state["netE"], state["netG"], net_c or state["netC"])


def training_forward(model, images01):
    """Run the training-loss forward, capturing the decoder input (the straight-through z_q)."""
    captured = {}
    hook = model.decoder.register_forward_pre_hook(lambda _, args: captured.update(z=args[0]))
    try:
        output = model(images01)
    finally:
        hook.remove()
    return output, captured["z"]


def test_vqvae_config_is_inferred(vqvae_fixture):
    _, config = import_fixture_vqvae(vqvae_fixture)
    assert (config.channels, config.residual_channels, config.residual_blocks) == (32, 16, 2)
    assert (config.codebooks, config.codebook_size) == (4, 16)


def test_vqvae_eval_path(vqvae_fixture):
    model, _ = import_fixture_vqvae(vqvae_fixture)
    images01, expected = vqvae_fixture["inputs"]["images01"], vqvae_fixture["outputs"]["eval"]
    close(normalize(images01), vqvae_fixture["inputs"]["x"])
    with torch.no_grad():
        z_e = model.encoder(normalize(images01))
        codes = model.encode(images01)
        z_q = model.quantizer.lookup(codes)
        close(z_e, expected["z_e"])
        assert torch.equal(codes, expected["codes"])
        close(z_q, expected["z_q"])
        close(model.decoder(z_q), expected["decoded"])
        close(model.decode(codes), expected["reconstruction01"])


def test_vqvae_training_forward_gradients_and_adam_step(vqvae_fixture):
    model, _ = import_fixture_vqvae(vqvae_fixture)
    images01 = vqvae_fixture["inputs"]["images01"]
    outputs = vqvae_fixture["outputs"]
    expected = outputs["train_forward"]
    train = validate({})["vqvae"]["train"]
    opts = optimizers(model, lr=train["lr"], betas=tuple(train["betas"]))
    output, z_q_st = training_forward(model, images01)

    assert torch.equal(output.codes, expected["codes"])
    close(z_q_st, expected["z_q_st"])
    close(model.quantizer.lookup(output.codes), expected["z_q_bar"])
    close(output.reconstruction, expected["x_tilde"])
    assert output.loss_reconstruction.item() == pytest.approx(expected["loss_reconstruction"], 1e-5)
    assert output.loss_commitment.item() == pytest.approx(expected["loss_commitment"], 1e-5)
    assert output.loss.item() == pytest.approx(expected["loss_total"], 1e-5)

    output.loss.backward()
    grads, _ = import_vqvae(
        outputs["grads"]["netE"], outputs["grads"]["netG"], vqvae_fixture["state_dict"]["netC"]
    )
    expected_grads = dict(grads.named_parameters())
    for name, parameter in model.named_parameters():
        close(parameter.grad, expected_grads[name])

    for opt in opts.values():
        opt.step()
    after = outputs["state_dict_after_step"]
    stepped, _ = import_vqvae(after["netE"], after["netG"], after["netC"])
    expected_state = stepped.state_dict()
    for name, value in model.state_dict().items():
        close(value, expected_state[name])


def test_vqvae_ema_step_from_authentic_init(vqvae_fixture):
    step = vqvae_fixture["outputs"]["init_codebook_step"]
    model, _ = import_fixture_vqvae(vqvae_fixture, net_c=step["netC_before"])
    with torch.no_grad():
        output, z_q_st = training_forward(model, vqvae_fixture["inputs"]["images01"])
    close(z_q_st, step["z_q_st"])
    close(model.quantizer.lookup(output.codes), step["z_q_bar"])
    expected, _ = import_fixture_vqvae(vqvae_fixture, net_c=step["netC_after"])
    for name in ("weight", "cluster_size", "embedding_sum"):
        close(getattr(model.quantizer, name), getattr(expected.quantizer, name))


# --------------------------------------------------------------------------------------------
# Transformer


@pytest.fixture(scope="module", params=TRANSFORMER_FILES)
def vt_fixture(request) -> dict:
    return load(request.param)


def fixture_batch(fixture: dict, config: vt.TransformerConfig):
    inputs = fixture["inputs"]
    frames = fixture["config"]["N_FRAMES_PER_VIDEO_TRAIN"]
    clips = torch.stack(
        [
            inputs["video"][v, :, start : start + frames]
            for v, start in zip(inputs["example_video"], inputs["clip_start"], strict=True)
        ]
    )
    return training_batch(clips, inputs["slice_abc"], config, fixture["config"]["N_PRIME"])


def test_transformer_config_is_inferred(vt_fixture):
    _, config = import_transformer(vt_fixture["state_dict"])
    original = vt_fixture["config"]
    assert config.kernel == tuple(original["KERNEL"])
    assert config.stride == tuple(original["STRIDE"])
    assert config.encoder_block == tuple(original["BLOCKS_E"][0])
    assert config.decoder_block == tuple(original["BLOCKS_D"][0])
    assert (config.codebooks, config.codebook_size) == (original["NC"], original["NV"])
    assert (config.embedding_dim, config.model_dim, config.head_dim) == (
        original["DE"],
        original["D"],
        original["DA"],
    )
    assert config.heads == original["N_HEAD_E"][0]
    assert (config.encoder_layers, config.decoder_layers) == (2, 2)


def test_transformer_fixture_has_nonzero_masked_taps(vt_fixture):
    """Precondition of the logits tests: they only pass if the mask is applied in forward."""
    taps = vt_fixture["state_dict"]["decoder.conv.conv.weight"][:, :, 2, 2, 1:]
    assert taps.abs().min() > 0


def test_training_batch_matches_original_mapper(vt_fixture):
    _, config = import_transformer(vt_fixture["state_dict"])
    context, target, ignore, index = fixture_batch(vt_fixture, config)
    inputs = vt_fixture["inputs"]
    assert torch.equal(context, inputs["context"])
    assert torch.equal(target, inputs["slice"])
    assert torch.equal(ignore, inputs["ignore_mask"])
    assert torch.equal(index, inputs["slice_idx"])


def test_transformer_outputs_and_loss(vt_fixture):
    model, config = import_transformer(vt_fixture["state_dict"])
    context, target, ignore, index = fixture_batch(vt_fixture, config)
    outputs = vt_fixture["outputs"]
    with torch.no_grad():
        z = model.encode(context, index)
        y = model.decode(target, z)
        logits = model.predict(y, target)
        close(z, outputs["encoder_out"])
        close(y, outputs["decoder_out"])
        for actual, expected in zip(logits, outputs["logits"], strict=True):
            close(actual, expected)
        for actual, expected in zip(model(context, target, index), logits, strict=True):
            assert torch.equal(actual, expected)
        loss = vt.slice_loss(logits, target, ignore)
        assert loss.item() == pytest.approx(outputs["loss"], rel=1e-5)
        for i, expected in enumerate(outputs["loss_per_example"]):
            one = vt.slice_loss(
                [lg[i : i + 1] for lg in logits], target[i : i + 1], ignore[i : i + 1]
            )
            assert one.item() == pytest.approx(expected, rel=1e-5)


def test_whole_video_bits_per_dim(vt_fixture):
    model, _ = import_transformer(vt_fixture["state_dict"])
    bits = vt_fixture["outputs"]["bits"]
    video = vt_fixture["inputs"]["video"][bits["video_index"]][None]
    n_prime = vt_fixture["config"]["N_PRIME"]
    with torch.no_grad():
        logits = vt.whole_video_logits(model, video)
    close(logits[0], bits["logits"])
    counted = torch.ones(video.shape[2:], dtype=torch.bool)
    counted[:n_prime] = False
    assert torch.equal(~counted[None], bits["ignore_mask"])
    ce = F.cross_entropy(logits.transpose(1, 2), video, reduction="none")  # (1, NC, T, H, W)
    ce_sum = ce[:, :, counted].sum().item()
    n_codes = int(counted.sum()) * video.shape[1]
    assert n_codes == bits["n_codes"]
    assert ce_sum == pytest.approx(bits["ce_sum"], rel=1e-5)
    assert ce_sum / math.log(2) / n_codes == pytest.approx(bits["bits_per_dim"], rel=1e-5)


# --------------------------------------------------------------------------------------------
# Importer errors


def test_read_original_accepts_fvcore_and_bare_files(tmp_path, vt_fixture):
    state = vt_fixture["state_dict"]
    torch.save({"model": state, "iteration": 7}, tmp_path / "fvcore.pth")
    torch.save(state, tmp_path / "bare.pth")
    for name in ("fvcore.pth", "bare.pth"):
        assert read_original(tmp_path / name).keys() == state.keys()


def test_read_original_rejects_bad_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"model": {"w": 1}}, tmp_path / "odd.pth")
    for name in ("junk.pth", "odd.pth", "missing.pth"):
        with pytest.raises(ValueError, match=name):
            read_original(tmp_path / name)


def test_import_errors_name_the_file(tmp_path):
    state = dict(load("vt_dsfvt_small.pt")["state_dict"])
    path = tmp_path / "netG_model_final.pth"

    def fails(bad: dict, match: str, **kwargs) -> None:
        torch.save({"model": bad, "iteration": 1}, path)
        with pytest.raises(ValueError, match=match) as err:
            import_transformer(str(path), **kwargs)
        assert str(path) in str(err.value)

    fails({**state, "encoder.extra": torch.zeros(1)}, "unexpected keys.*encoder.extra")
    fails({k: v for k, v in state.items() if k != "ch_predictor.P.3.bias"}, "P.3.bias")
    fails({k: v for k, v in state.items() if k != "decoder.block_local_attention.1.mask"}, "mask")
    fails({**state, "ch_predictor.P.0.weight": torch.zeros(16, 31)}, "shape")
    dt = state["decoder.block_local_attention.0.dt"].clone()
    dt[5] += 1
    fails({**state, "decoder.block_local_attention.0.dt": dt}, "deterministic")
    fails(state, "stride", stride=(8, 1, 1))
    fails({**state, "encoder.conv.weight": torch.zeros(16, 64, 3, 1, 1)}, "unknown context kernel")


def test_vqvae_import_errors(vqvae_fixture):
    state = vqvae_fixture["state_dict"]
    net_e = {k: v for k, v in state["netE"].items() if k != "layers.6.block.3.bias"}
    with pytest.raises(ValueError, match=r"netE: missing keys \['layers.6.block.3.bias'\]"):
        import_vqvae(net_e, state["netG"], state["netC"])
    net_c = {**state["netC"], "ve.1.running_sum": torch.zeros(16, 9)}
    with pytest.raises(ValueError, match="shape"):
        import_vqvae(state["netE"], state["netG"], net_c)
