"""Validate pipeline configuration against the project's one schema.

Snakemake (workflow/rules/common.smk) and every stage module call `validate`, so a bad key or
value fails the same way, naming the key, before any work is done. Defaults come from the schema
and from nowhere else: the model configs have none, `model_configs` builds them from settings.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

if TYPE_CHECKING:
    from lvt.models.transformer import TransformerConfig
    from lvt.models.vqvae import VQVAEConfig

LATENT_DOWNSAMPLING = 4
"""The VQ-VAE maps a size×size frame to a (size/4)×(size/4) grid of codes."""
GRID_AXES = ("frames", "height", "width")
"""The axes of a code grid, a stride and an attention block, in order."""


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or inconsistent."""


@dataclass(frozen=True)
class TilingMisfit:
    """The part of a transformer's geometry that does not tile a code grid, and how."""

    part: str
    """`stride`, `encoder_block` or `decoder_block`: its key under `transformer.model`."""
    axis: int
    """The first axis of the grid (0: frames) on which it does not divide."""
    message: str
    """What does not fit, with the sizes."""


def tiling_misfit(
    grid: Sequence[int],
    stride: Sequence[int],
    encoder_block: Sequence[int],
    decoder_block: Sequence[int],
) -> TilingMisfit | None:
    """Whether a transformer can model a code grid (frames, height, width): its subscale stride
    must divide the grid, and each attention block the grid of a slice (grid / stride). The
    first part that does not, or None; config validation and model files both check this."""
    grid, stride = tuple(grid), tuple(stride)
    for axis, (extent, step) in enumerate(zip(grid, stride, strict=True)):
        if extent % step:
            return TilingMisfit("stride", axis, f"stride {stride} does not divide the code grid "
                                                f"{grid} along its {GRID_AXES[axis]}")
    slice_grid = tuple(extent // step for extent, step in zip(grid, stride, strict=True))
    for part, block in (("encoder_block", encoder_block), ("decoder_block", decoder_block)):
        for axis, (extent, size) in enumerate(zip(slice_grid, block, strict=True)):
            if extent % size:
                name = part.removesuffix("_block")
                return TilingMisfit(part, axis, f"{name} attention block {tuple(block)} does not "
                                                f"tile the slice grid {slice_grid} (code grid "
                                                f"{grid} / stride {stride}) along its "
                                                f"{GRID_AXES[axis]}")
    return None


def _with_defaults(validator_class: type) -> type:
    """Extend a validator so that it fills each missing property with its schema default."""
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": fill_defaults})


_FillingValidator = _with_defaults(Draft202012Validator)


@cache
def schema() -> dict[str, Any]:
    """The configuration schema (workflow/schemas/config.schema.yaml)."""
    text = resources.files("lvt").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _key_path(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a validated copy of `config` with every default filled in.

    Cross-key rules are checked among the sections `config` holds (a stage receives only its
    own sections; Snakemake checks the whole configuration). Raises ConfigError naming the key.
    """
    filled = json.loads(json.dumps(config))
    errors = sorted(_FillingValidator(schema()).iter_errors(filled), key=lambda e: e.path)
    if errors:
        lines = [f"config key {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_consistency(filled, present=set(config) or set(filled))
    return filled


def load_settings(text: str) -> dict[str, Any]:
    """Parse the JSON settings a rule hands to a stage module and validate them."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"settings are not valid JSON: {error}") from error
    return validate(parsed)


def settings_json(config: Mapping[str, Any], *sections: str) -> str:
    """The named top-level sections of `config` as canonical JSON, for a rule's params.

    Handing a stage only its sections means Snakemake re-runs it exactly when they change.
    """
    return json.dumps({name: config[name] for name in sections}, sort_keys=True)


def model_configs(settings: Mapping[str, Any]) -> tuple[VQVAEConfig, TransformerConfig]:
    """The VQ-VAE and transformer that validated settings (sections `vqvae` and `transformer`)
    describe; the transformer models the VQ-VAE's codes, so it takes their codebooks from it.

    The models are imported here, not at module level, so that Snakemake loads no torch.
    """
    from lvt.models.transformer import TransformerConfig
    from lvt.models.vqvae import VQVAEConfig

    vqvae = VQVAEConfig(**settings["vqvae"]["model"])
    transformer = TransformerConfig(codebooks=vqvae.codebooks, codebook_size=vqvae.codebook_size,
                                    **settings["transformer"]["model"])
    return vqvae, transformer


def paper_model_configs() -> tuple[VQVAEConfig, TransformerConfig]:
    """The paper's BAIR models, PR-DVQVAE2 and DSFVT: those of the schema's defaults."""
    return model_configs(validate({}))


def latent_size(config: Mapping[str, Any]) -> int:
    """Side of the per-frame code grid."""
    return config["preprocess"]["size"] // LATENT_DOWNSAMPLING


def check_shard(key: str, shards: int, shard: int) -> None:
    """Fail unless `shard` is one of the `shards` jobs that config key `key` sets."""
    if not 0 <= shard < shards:
        raise ConfigError(f"config key {key}: is {shards}, so --shard {shard} is out of range")


def check_kinetics_download(kinetics: Mapping[str, Any], split: str, shard: int) -> None:
    """What downloading one shard of a Kinetics-600 split needs of the `source.kinetics600`
    settings beyond the schema: the shard exists, the split has a CSV, and the URL template holds
    no placeholder but {youtube_id}."""
    check_shard("source.kinetics600.shards", kinetics["shards"], shard)
    if not kinetics[f"{split}_csv"]:
        raise ConfigError(f"config key source.kinetics600.{split}_csv: required")
    try:
        kinetics["url_template"].format(youtube_id="x")
    except (IndexError, KeyError, ValueError) as error:
        raise ConfigError("config key source.kinetics600.url_template: may hold no other "
                          f"placeholder than {{youtube_id}} ({error!r})") from error


def _check_consistency(config: dict[str, Any], present: set[str]) -> None:
    """Cross-key rules the schema cannot express, among the `present` sections."""
    source = config["source"]
    if "source" in present and source["kind"] == "local" and not source["local"]["path"]:
        raise ConfigError("config key source.local.path: required when source.kind is 'local'")
    if "source" in present and source["kind"] == "kinetics600":
        for split in ("train", "test"):
            if not source["kinetics600"][f"{split}_csv"]:
                raise ConfigError(f"config key source.kinetics600.{split}_csv: required when "
                                  "source.kind is 'kinetics600'")
    if "source" in present and "preprocess" in present and source["kind"] == "bair" \
            and config["preprocess"]["size"] != 64:
        raise ConfigError("config key preprocess.size: BAIR frames are 64×64, so it must be 64 "
                          "with source.kind bair")
    synthetic = source["synthetic"]
    if "source" in present and synthetic["window_start"] >= synthetic["seconds"]:
        raise ConfigError(
            "config key source.synthetic.window_start: must be below source.synthetic.seconds"
        )

    vq = config["vqvae"]["model"]
    if "vqvae" in present and vq["channels"] % vq["codebooks"]:
        raise ConfigError(
            f"config key vqvae.model.channels: {vq['channels']} is not divisible by "
            f"vqvae.model.codebooks ({vq['codebooks']})"
        )
    for name in ("sample", "fvd"):
        if name in present and config[name]["n_prime"] >= config[name]["frames"]:
            raise ConfigError(f"config key {name}.n_prime: must be smaller than {name}.frames")
    if "transformer" in present:
        _check_transformer(config, present)


def _check_transformer(config: dict[str, Any], present: set[str]) -> None:
    """Stride and block sizes must tile the latent grid of every clip the transformer sees."""
    model = config["transformer"]["model"]
    train = config["transformer"]["train"]
    latent = latent_size(config)
    clips = {"transformer.train.clip_frames": train["clip_frames"]}
    clips.update({f"{name}.frames": config[name]["frames"]
                  for name in ("sample", "evaluate", "fvd") if name in present})
    for key, frames in clips.items():
        misfit = tiling_misfit((frames, latent, latent), model["stride"], model["encoder_block"],
                               model["decoder_block"])
        if misfit is not None:
            raise ConfigError(f"config key transformer.model.{misfit.part}: {misfit.message} "
                              f"(the latent grid of {key})")

    if train["n_prime"] >= train["clip_frames"]:
        raise ConfigError(
            "config key transformer.train.n_prime: must be smaller than "
            "transformer.train.clip_frames"
        )
