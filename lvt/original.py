"""Import checkpoints of the authors' code (rakhimovv/lvt at commit 0899c21) into our models.

The original trainer (`configure_optimizers_and_checkpointers` in
vidgen/modeling/meta_arch/vqvae.py and vt.py) saves one fvcore file per sub-network,
`{"model": state_dict, "iteration": int}`: VQ-VAE under netE/ (encoder), netG/ (decoder), netC/
(codebooks) and the transformer under netG/. Our configs are inferred from the tensor shapes,
every key is mapped onto our parameter names, and any missing/unexpected key, wrong shape or
deviating deterministic buffer raises a ValueError naming the file (or sub-network) it came from.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import Tensor

from lvt.checkpoints import read_torch_file
from lvt.config import paper_model_configs
from lvt.models.transformer import (
    LatentVideoTransformer,
    PositionalEncoding3d,
    TransformerConfig,
    relative_index,
)
from lvt.models.vqvae import VQVAE, VQVAEConfig

StateSource = Mapping[str, Tensor] | str | os.PathLike[str]

# Our Linear layers that are 1×1×1 convolutions in the original.
_FLATTENED = {"encoder.projection.weight", "decoder.context_projection.weight"}

KNOWN_STRIDES: dict[tuple[int, int, int], tuple[int, int, int]] = {
    (7, 1, 1): (16, 1, 1),  # DSFVT, KDSFVT
    (1, 3, 3): (1, 2, 2),  # DSSVT
    (5, 3, 3): (4, 2, 2),  # DSTSVT
}


def read_original(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """State dict of an original checkpoint file (fvcore `{"model": ...}` or a bare state dict)."""
    payload = read_torch_file(path, "PyTorch checkpoint")
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: neither a state dict nor an fvcore checkpoint with 'model'")
    return state


def _source(source: StateSource, label: str) -> tuple[Mapping[str, Tensor], str]:
    """A state dict and the name to use in error messages (the file path when given one)."""
    if isinstance(source, str | os.PathLike):
        return read_original(source), str(source)
    return source, label


def _get(state: Mapping[str, Tensor], key: str, label: str) -> Tensor:
    if key not in state:
        raise ValueError(f"{label}: missing key {key!r}")
    return state[key]


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    """Number of distinct integers matched by the group of `pattern` among the keys."""
    return len({m.group(1) for key in state if (m := re.fullmatch(pattern, key))})


def _check_keys(state: Mapping[str, Tensor], expected: set[str], label: str) -> None:
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{label}: missing keys {missing}, unexpected keys {unexpected}")


def _check_shape(label: str, key: str, tensor: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{label}: {key!r} has shape {tuple(tensor.shape)}, expected {shape}")


def _convert(
    state: Mapping[str, Tensor], names: dict[str, str], target: Mapping[str, Tensor], label: str
) -> dict[str, Tensor]:
    """Rename original tensors to ours, checking every shape against our model's.

    The original's 1×1×1 convolutions are our Linear layers: their kernel dims are dropped.
    """
    ours = {}
    for original, name in names.items():
        shape = tuple(target[name].shape)
        if name in _FLATTENED:
            shape = (*shape, 1, 1, 1)
        _check_shape(label, original, state[original], shape)
        ours[name] = state[original].reshape(target[name].shape).float()
    return ours


# --------------------------------------------------------------------------------------------
# VQ-VAE


def _with_weight_and_bias(names: dict[str, str]) -> dict[str, str]:
    return {f"{k}.{p}": f"{v}.{p}" for k, v in names.items() for p in ("weight", "bias")}


def _vqvae_names(config: VQVAEConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Original -> our parameter names for netE and netG."""
    n = config.residual_blocks
    encoder = {"layers.0": "encoder.down1", "layers.2": "encoder.down2", "layers.4": "encoder.conv"}
    decoder = {
        "layers.0": "decoder.conv",
        f"layers.{n + 2}": "decoder.up1",
        f"layers.{n + 4}": "decoder.up2",
    }
    for i in range(n):
        for conv, ours in (("1", "conv3x3"), ("3", "conv1x1")):
            encoder[f"layers.{5 + i}.block.{conv}"] = f"encoder.blocks.{i}.{ours}"
            decoder[f"layers.{1 + i}.block.{conv}"] = f"decoder.blocks.{i}.{ours}"
    return _with_weight_and_bias(encoder), _with_weight_and_bias(decoder)


def import_vqvae(
    net_e: StateSource, net_g: StateSource, net_c: StateSource
) -> tuple[VQVAE, VQVAEConfig]:
    """Build our VQ-VAE from the original encoder, decoder and codebook state dicts (or files).

    The sizes come from the tensors; the codebook rule (EMA, commitment), which they do not hold,
    is the paper's."""
    (net_e, label_e), (net_g, label_g), (net_c, label_c) = (
        _source(net_e, "netE"),
        _source(net_g, "netG"),
        _source(net_c, "netC"),
    )
    codebooks = _count(net_c, r"ve\.(\d+)\.embedding\.weight")
    size, dim = _get(net_c, "ve.0.embedding.weight", label_c).shape
    config = replace(
        paper_model_configs()[0],
        channels=_get(net_e, "layers.4.weight", label_e).shape[0],
        residual_channels=_get(net_e, "layers.5.block.1.weight", label_e).shape[0],
        residual_blocks=_count(net_e, r"layers\.(\d+)\.block\.1\.weight"),
        codebooks=codebooks,
        codebook_size=size,
    )
    if dim * codebooks != config.channels:
        raise ValueError(
            f"{label_c}: {codebooks} codebooks of dim {dim} do not cover the encoder's "
            f"{config.channels} channels"
        )
    model = VQVAE(config)
    target = model.state_dict()
    names_e, names_g = _vqvae_names(config)
    ours: dict[str, Tensor] = {}
    for state, names, label in ((net_e, names_e, label_e), (net_g, names_g, label_g)):
        _check_keys(state, set(names), label)
        ours.update(_convert(state, names, target, label))
    parts = {
        "embedding.weight": "weight",
        "running_size": "cluster_size",
        "running_sum": "embedding_sum",
    }
    _check_keys(net_c, {f"ve.{i}.{p}" for i in range(codebooks) for p in parts}, label_c)
    for original, name in parts.items():
        shape = (size,) if original == "running_size" else (size, dim)
        for i in range(codebooks):
            _check_shape(label_c, f"ve.{i}.{original}", net_c[f"ve.{i}.{original}"], shape)
        ours[f"quantizer.{name}"] = torch.stack(
            [net_c[f"ve.{i}.{original}"].float() for i in range(codebooks)]
        )
    model.load_state_dict(ours)
    return model, config


# --------------------------------------------------------------------------------------------
# Transformer

_LAYER_NAMES = {
    "dt_bank": "attention.bias_t",
    "dh_bank": "attention.bias_h",
    "dw_bank": "attention.bias_w",
    "mha.w_q": "attention.query",
    "mha.w_k": "attention.key",
    "mha.w_v": "attention.value",
    "mha.proj.weight": "attention.output.weight",
    **_with_weight_and_bias(
        {
            "mha.layer_norm": "attention.norm",
            "ffn.0": "feed_forward.norm",
            "ffn.1": "feed_forward.fc1",
            "ffn.3": "feed_forward.fc2",
        }
    ),
}


def _transformer_names(config: TransformerConfig) -> dict[str, str]:
    """Original -> our names of every learned tensor."""
    names = {
        "encoder.slice_embedding.weight": "encoder.slice_embedding.weight",
        "encoder.linear_projector.weight": "encoder.projection.weight",
        "decoder.linear_projector.weight": "decoder.context_projection.weight",
        **_with_weight_and_bias(
            {
                "encoder.conv": "encoder.context_embedding",
                "decoder.conv.conv": "decoder.causal_conv",
                "ch_predictor.layer_norm": "predictor.norm",
            }
        ),
    }
    for k in range(config.codebooks):
        names[f"decoder.ch_embedder.{k}.weight"] = f"decoder.code_embeddings.{k}.weight"
        names.update(
            _with_weight_and_bias(
                {
                    f"ch_predictor.U.{k}": f"predictor.hidden.{k}",
                    f"ch_predictor.P.{k}": f"predictor.output.{k}",
                }
            )
        )
    for stack, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(layers):
            names.update(
                {
                    f"{stack}.block_local_attention.{i}.{original}": f"{stack}.layers.{i}.{ours}"
                    for original, ours in _LAYER_NAMES.items()
                }
            )
    return names


def _layer_shape(
    state: Mapping[str, Tensor], stack: str, layers: int, name: str, label: str
) -> tuple[int, ...]:
    """Shape of a per-layer tensor, required to be the same in every layer of a stack."""
    shapes = {
        tuple(_get(state, f"{stack}.block_local_attention.{i}.{name}", label).shape)
        for i in range(layers)
    }
    if len(shapes) != 1:
        raise ValueError(f"{label}: {stack} layers differ in the shape of {name}: {shapes}")
    return shapes.pop()


def _infer_transformer_config(
    state: Mapping[str, Tensor], stride: tuple[int, int, int] | None, label: str
) -> TransformerConfig:
    layers = {
        stack: _count(state, stack + r"\.block_local_attention\.(\d+)\.mha\.w_q")
        for stack in ("encoder", "decoder")
    }
    if min(layers.values()) == 0:
        raise ValueError(
            f"{label}: no attention layers found; not a LatentVideoTransformer state dict"
        )
    blocks = {}
    for stack, n in layers.items():
        tables = [_layer_shape(state, stack, n, f"d{axis}_bank", label) for axis in "thw"]
        blocks[stack] = tuple((table[1] + 1) // 2 for table in tables)
    heads = {_layer_shape(state, stack, n, "mha.w_q", label) for stack, n in layers.items()}
    if len(heads) != 1:
        raise ValueError(f"{label}: encoder and decoder attention differ in shape: {heads}")
    n_heads, model_dim, head_dim = heads.pop()
    codebook_size, embedding_dim = _get(state, "decoder.ch_embedder.0.weight", label).shape
    kernel = tuple(_get(state, "encoder.conv.weight", label).shape[2:])
    if stride is None:
        if kernel not in KNOWN_STRIDES:
            raise ValueError(f"{label}: unknown context kernel {kernel}; give the stride")
        stride = KNOWN_STRIDES[kernel]
    slices = _get(state, "encoder.slice_embedding.weight", label).shape[0]
    if math.prod(stride) != slices:
        raise ValueError(
            f"{label}: stride {tuple(stride)} gives {math.prod(stride)} slices but the slice "
            f"embedding has {slices} entries"
        )
    return TransformerConfig(
        codebooks=_count(state, r"decoder\.ch_embedder\.(\d+)\.weight"),
        codebook_size=codebook_size,
        kernel=kernel,
        stride=stride,
        embedding_dim=embedding_dim,
        model_dim=model_dim,
        head_dim=head_dim,
        heads=n_heads,
        encoder_layers=layers["encoder"],
        decoder_layers=layers["decoder"],
        encoder_block=blocks["encoder"],
        decoder_block=blocks["decoder"],
    )


def _deterministic_buffers(config: TransformerConfig) -> dict[str, Tensor]:
    """The original's non-learned buffers, recomputed from the config."""
    buffers = {
        "encoder.positional_encoder.inv_timescales": PositionalEncoding3d(
            config.embedding_dim
        ).inv_timescales,
        "decoder.positional_encoder.inv_timescales": PositionalEncoding3d(
            config.model_dim
        ).inv_timescales,
    }
    for stack, layers, block in (
        ("encoder", config.encoder_layers, config.encoder_block),
        ("decoder", config.decoder_layers, config.decoder_block),
    ):
        tb, hb, wb = block
        tokens = tb * hb * wb
        grids = (
            relative_index(tb)[:, None, None, :, None, None],
            relative_index(hb)[None, :, None, None, :, None],
            relative_index(wb)[None, None, :, None, None, :],
        )
        indices = {
            name: grid.expand(tb, hb, wb, tb, hb, wb).flatten()
            for name, grid in zip(("dt", "dh", "dw"), grids, strict=True)
        }
        for i in range(layers):
            prefix = f"{stack}.block_local_attention.{i}."
            buffers.update({prefix + name: index for name, index in indices.items()})
            if stack == "decoder":
                buffers[prefix + "mask"] = (
                    torch.ones(tokens, tokens).triu(1).view(1, 1, tokens, tokens)
                )
    return buffers


def import_transformer(
    net_g: StateSource, stride: tuple[int, int, int] | None = None
) -> tuple[LatentVideoTransformer, TransformerConfig]:
    """Build our LatentVideoTransformer from the original `netG` state dict (or file).

    The stride cannot be read from the weights; it defaults to the one of the known variant
    with the same context kernel and is checked against the number of slice embeddings.
    """
    state, label = _source(net_g, "netG")
    config = _infer_transformer_config(state, stride, label)
    model = LatentVideoTransformer(config)
    buffers = _deterministic_buffers(config)
    names = _transformer_names(config)
    _check_keys(state, set(names) | set(buffers), label)
    for key, expected in buffers.items():
        _check_shape(label, key, state[key], tuple(expected.shape))
        if not torch.allclose(state[key].to(expected.dtype), expected, rtol=1e-6, atol=1e-6):
            raise ValueError(f"{label}: buffer {key!r} differs from its deterministic value")
    model.load_state_dict(_convert(state, names, model.state_dict(), label))
    return model, config
