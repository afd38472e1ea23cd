"""Latent Video Transformer: slicing, context, equivalences, causality, sizes."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from lvt.config import paper_model_configs, validate
from lvt.models import transformer as vt
from lvt.models.transformer import (
    BlockLocalAttention,
    CausalConv3d,
    ContextEmbedding,
    LatentVideoTransformer,
    PositionalEncoding3d,
    TransformerConfig,
)

_, PAPER = paper_model_configs()  # DSFVT
VARIANTS = {  # kernel, stride, block of the three paper configurations
    "DSFVT": ((7, 1, 1), (16, 1, 1), (1, 16, 16)),
    "DSSVT": ((1, 3, 3), (1, 2, 2), (4, 8, 8)),
    "DSTSVT": ((5, 3, 3), (4, 2, 2), (4, 8, 8)),
}
SMALL = {
    "codebooks": 3,
    "codebook_size": 6,
    "embedding_dim": 8,
    "model_dim": 12,
    "head_dim": 4,
    "heads": 2,
    "encoder_layers": 2,
    "decoder_layers": 2,
}


def small_config(kernel, stride, block=(2, 2, 2)) -> TransformerConfig:
    return TransformerConfig(
        **SMALL, kernel=kernel, stride=stride, encoder_block=block, decoder_block=block
    )


def perturbed_model(config: TransformerConfig) -> LatentVideoTransformer:
    """A model whose zero-initialised parameters (biases, relative tables) are non-zero too."""
    model = LatentVideoTransformer(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


# --------------------------------------------------------------------------------------------
# Config and sizes


def test_config_accepts_lists_and_validates():
    config = TransformerConfig(**{**asdict(PAPER), "kernel": [5, 3, 3]})
    assert config.kernel == (5, 3, 3) and config == replace(PAPER, kernel=(5, 3, 3))
    assert replace(PAPER, stride=(4, 2, 2)).num_slices == 16
    with pytest.raises(ValueError, match="stride"):
        replace(PAPER, stride=(4, 2))


@pytest.mark.parametrize(
    ("variant", "expected"),
    [("DSFVT", 49_872_384), ("DSSVT", 50_391_808), ("DSTSVT", 59_830_528)],
)
def test_full_size_parameter_counts(variant, expected):
    kernel, stride, block = VARIANTS[variant]
    config = replace(PAPER, kernel=kernel, stride=stride, encoder_block=block, decoder_block=block)
    with torch.device("meta"):
        model = LatentVideoTransformer(config)
    assert vt.count_parameters(model) == expected


def test_initialisation_follows_the_original():
    torch.manual_seed(0)
    config = replace(
        PAPER,
        **{**SMALL, "codebook_size": 64, "model_dim": 64, "head_dim": 16, "heads": 4},
        kernel=(3, 1, 1),
        stride=(4, 1, 1),
    )
    model = LatentVideoTransformer(config)
    for name, p in model.named_parameters():
        if name.endswith("bias") or ".bias_" in name:  # biases and relative-position tables
            assert not p.any(), name
        elif "norm" in name:
            assert (p == 1).all(), name
    for linear in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
        bound = math.sqrt(6 / (linear.in_features + linear.out_features))
        assert linear.weight.abs().max() <= bound
        assert linear.weight.abs().max() > 0.9 * bound
    query = model.encoder.layers[0].attention.query  # xavier-normal on the (4, 64, 16) tensor
    assert query.std().item() == pytest.approx(math.sqrt(2 / (64 * 16 + 4 * 16)), rel=0.05)
    assert model.decoder.code_embeddings[0].weight.std().item() == pytest.approx(1, rel=0.1)


# --------------------------------------------------------------------------------------------
# Subscale slicing and the loss


def test_slice_index_round_trip_and_order():
    stride = (4, 2, 2)
    abcs = [vt.slice_abc(i, stride) for i in range(16)]
    assert abcs == sorted(abcs)  # a outermost, then b, then c
    assert [vt.slice_index(abc, stride) for abc in abcs] == list(range(16))


def test_take_slice():
    video = torch.arange(2 * 3 * 8 * 4 * 4).view(2, 3, 8, 4, 4)
    part = vt.take_slice(video, (1, 0, 1), (4, 2, 2))
    assert part.shape == (2, 3, 2, 2, 2)
    assert torch.equal(part[:, :, 1, 1, 0], video[:, :, 5, 2, 1])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_slice_context_windows_see_exactly_the_earlier_slices(variant):
    """Brute force: window tap (dt, dh, dw) of output p reads video[p·s + abc + d − k//2] when
    that position exists and belongs to an earlier slice, and −1 otherwise."""
    kernel, stride, _ = VARIANTS[variant]
    config = small_config(kernel, stride)
    shape = (stride[0] * 2, stride[1] * 2, stride[2] * 2)
    video = torch.randint(0, 6, (1, 1, *shape))
    for index in range(config.num_slices):
        abc = vt.slice_abc(index, stride)
        context = vt.slice_context(video, abc, config)
        windows = context.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
        windows = windows.unfold(4, kernel[2], stride[2])[0, 0]
        assert windows.shape[:3] == (2, 2, 2)
        for p in torch.cartesian_prod(*(torch.arange(2),) * 3).tolist():
            for d in torch.cartesian_prod(*(torch.arange(k) for k in kernel)).view(-1, 3).tolist():
                q = [pi * s + o + di - k // 2 for pi, s, o, di, k in
                     zip(p, stride, abc, d, kernel, strict=True)]  # fmt: skip
                inside = all(0 <= qi < n for qi, n in zip(q, shape, strict=True))
                abc_q = [qi % s for qi, s in zip(q, stride, strict=True)]
                earlier = inside and vt.slice_index(abc_q, stride) < index
                expected = video[0, 0, q[0], q[1], q[2]].item() if earlier else vt.PAD
                assert windows[(*p, *d)].item() == expected


def test_slice_loss_is_a_batch_mean_over_kept_positions_then_over_codebooks():
    torch.manual_seed(0)
    logits = [torch.randn(2, 5, 1, 2, 3) for _ in range(3)]
    target = torch.randint(0, 5, (2, 3, 1, 2, 3))
    ignore = torch.zeros(2, 1, 1, 2, 3, dtype=torch.bool)
    ignore[0, 0, 0, 0] = True
    keep = ~ignore[:, 0]
    expected = (
        sum(
            F.cross_entropy(lg.permute(0, 2, 3, 4, 1)[keep], target[:, k][keep])
            for k, lg in enumerate(logits)
        )
        / 3
    )
    torch.testing.assert_close(vt.slice_loss(logits, target, ignore), expected)


# --------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_context_embedding_equals_one_hot_convolution(variant):
    kernel, stride, _ = VARIANTS[variant]
    config = small_config(kernel, stride)
    torch.manual_seed(0)
    embedding = ContextEmbedding(config)
    torch.nn.init.normal_(embedding.weight)
    torch.nn.init.normal_(embedding.bias)
    shape = (4 * stride[0], 2 * stride[1], 3 * stride[2])
    video = torch.randint(-1, 6, (2, 3, *shape))  # −1 = padding
    context = vt.slice_context(video, vt.slice_abc(config.num_slices - 1, stride), config)
    one_hot = F.one_hot(context.clamp(min=0), 6) * (context >= 0).unsqueeze(-1)
    one_hot = one_hot.permute(0, 1, 5, 2, 3, 4).flatten(1, 2).float()  # channel k·NV + v
    expected = F.conv3d(one_hot, embedding.weight, embedding.bias, stride=stride)
    actual = embedding(context).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_causal_conv_ignores_the_stored_masked_taps():
    conv = CausalConv3d(4, 5)
    torch.nn.init.normal_(conv.weight)
    x = torch.randn(2, 4, 3, 4, 4)
    before = conv(x)
    with torch.no_grad():
        conv.weight[:, :, 2, 2, 1:] = 100.0
    torch.testing.assert_close(conv(x), before)


def test_positional_encoding_layout():
    encoding = PositionalEncoding3d(20)(3, 4, 5)  # n = 3 timescales, channels 18, 19 empty
    inv = torch.exp(-torch.arange(3) * math.log(1e4) / 3)
    position = torch.tensor([2, 1, 4])
    for axis in range(3):
        angles = position[axis] * inv
        channels = encoding[2, 1, 4, 6 * axis : 6 * axis + 6]
        torch.testing.assert_close(channels, torch.cat([angles.sin(), angles.cos()]))
    assert not encoding[..., 18:].any()


def test_attention_blocks_do_not_interact():
    config = small_config((1, 1, 1), (1, 1, 1))
    for causal in (False, True):
        attention = BlockLocalAttention(config, (2, 2, 3), causal=causal)
        with torch.no_grad():
            for table in (attention.bias_t, attention.bias_h, attention.bias_w):
                table.normal_()
        x = torch.randn(2, 4, 2, 6, 12)  # grid of 2 × 1 × 2 blocks
        whole = attention(x)
        for t in (0, 2):
            for w in (0, 3):
                block = x[:, t : t + 2, :, w : w + 3]
                torch.testing.assert_close(whole[:, t : t + 2, :, w : w + 3], attention(block))


def test_training_attention_keeps_no_probability_matrices():
    """The fused kernel runs in training although the bias is learned (no math fallback)."""
    attention = BlockLocalAttention(small_config((1, 1, 1), (1, 1, 1)), (2, 2, 3), causal=True)
    x = torch.randn(2, 2, 2, 3, 12, requires_grad=True)
    with torch.profiler.profile() as profile:
        attention(x).sum().backward()
    names = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_scaled_dot_product_attention_math" not in names
    assert attention.bias_t.grad is not None and attention.bias_w.grad.abs().sum() > 0


def test_channel_predictor_equals_linear_over_one_hot_inputs():
    torch.manual_seed(0)
    predictor = vt.ChannelPredictor(small_config((1, 1, 1), (1, 1, 1)))
    h = torch.randn(5, 12)
    codes = torch.randint(0, 6, (5, 3))
    for k in range(3):
        onehot = F.one_hot(codes[:, :k], 6).flatten(1).float()
        hidden = predictor.hidden[k](torch.cat([h, onehot], dim=1))
        expected = predictor.output[k](F.relu(hidden))
        torch.testing.assert_close(predictor.codebook_logits(h, codes[:, :k], k), expected)


# --------------------------------------------------------------------------------------------
# Information flow


def test_decoder_is_causal_in_raster_order():
    torch.manual_seed(0)
    config = small_config((3, 1, 1), (2, 1, 1), block=(2, 2, 3))
    model = perturbed_model(config)
    codes = torch.randint(0, 6, (1, 3, 2, 4, 3))
    z = torch.randn(1, 12, 2, 4, 3)
    with torch.no_grad():
        y = model.decode(codes, z).flatten(2)
        logits = torch.stack(model.predict(model.decode(codes, z), codes)).flatten(3)
        for p in range(24):
            changed = codes.clone().flatten(2)
            changed[:, :, p] = (changed[:, :, p] + 1) % 6
            changed = changed.view_as(codes)
            y2 = model.decode(changed, z).flatten(2)
            assert torch.equal(y2[:, :, : p + 1], y[:, :, : p + 1])  # outputs up to p unchanged
            if p < 23:
                assert not torch.allclose(y2[:, :, p + 1 :], y[:, :, p + 1 :])
            logits2 = torch.stack(model.predict(y2.view_as(z), changed)).flatten(3)
            assert torch.equal(logits2[..., :p], logits[..., :p])
            # At p itself codebook 0 sees no code of p; codebook k sees codes c_<k.
            assert torch.equal(logits2[0, ..., p], logits[0, ..., p])
            assert not torch.allclose(logits2[1:, ..., p], logits[1:, ..., p])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_encoder_ignores_current_and_later_slices(variant):
    kernel, stride, _ = VARIANTS[variant]
    torch.manual_seed(0)
    config = small_config(kernel, stride, block=(1, 2, 2))
    model = perturbed_model(config)
    video = torch.randint(0, 6, (1, 3, 2 * stride[0], 2 * stride[1], 2 * stride[2]))
    order = vt.slice_index_grid(video.shape[2:], stride)
    changed = (video + 1) % 6
    with torch.no_grad():
        for index in range(1, config.num_slices):
            abc, idx = vt.slice_abc(index, stride), torch.tensor([index])
            z = model.encode(vt.slice_context(video, abc, config), idx)
            later = torch.where(order >= index, changed, video)
            assert torch.equal(model.encode(vt.slice_context(later, abc, config), idx), z)
            earlier = torch.where(order < index, changed, video)
            assert not torch.equal(model.encode(vt.slice_context(earlier, abc, config), idx), z)


def test_whole_video_logits_shape_and_optimizer():
    config = small_config((3, 1, 1), (2, 1, 1), block=(1, 2, 2))
    model = LatentVideoTransformer(config)
    with torch.no_grad():
        logits = vt.whole_video_logits(model, torch.randint(0, 6, (2, 3, 4, 2, 2)))
    assert logits.shape == (2, 3, 6, 4, 2, 2)
    train = validate({})["transformer"]["train"]
    opt = vt.optimizer(model, lr=train["lr"], alpha=train["alpha"], momentum=train["momentum"],
                       eps=train["eps"])
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.RMSprop)
    assert (group["lr"], group["alpha"], group["momentum"], group["eps"]) == (2e-5, 0.95, 0.9, 1e-8)
    assert group["weight_decay"] == 0
