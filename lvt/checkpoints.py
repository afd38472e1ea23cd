"""Our model file format: one `torch.save` dict, loadable with `torch.load(weights_only=True)`.

Payload: {"format": "lvt-model", "version": 1, "kind": "vqvae" | "transformer",
"config": dataclass fields, "state_dict": tensors, "lvt_version": str, **extra}.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from lvt import __version__
from lvt.atomic import atomic_path
from lvt.errors import InputError
from lvt.models.transformer import TransformerConfig, VideoTransformer
from lvt.models.vqvae import VQVAE, VQVAEConfig

FORMAT = "lvt-model"
VERSION = 1
KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "vqvae": (VQVAE, VQVAEConfig),
    "transformer": (VideoTransformer, TransformerConfig),
}
RESERVED = ("format", "version", "kind", "config", "state_dict", "lvt_version")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_torch_file(path: str | os.PathLike[str], what: str) -> Any:
    """`torch.load(weights_only=True)` on CPU; InputError naming the file if it is missing or
    unreadable (`what` says what the file should have been)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except Exception as err:
        raise InputError(f"{path}: not a readable {what} ({type(err).__name__})") from err


def _classes(kind: str) -> tuple[type[nn.Module], type]:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind]


def save_model(
    path: str | os.PathLike[str],
    kind: str,
    config: Any,
    model: nn.Module,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a model file atomically; returns its SHA-256."""
    _, config_class = _classes(kind)
    if not isinstance(config, config_class):
        raise ValueError(f"a {kind} model needs a {config_class.__name__}, got {type(config)}")
    clashes = sorted(set(extra or {}) & set(RESERVED))
    if clashes:
        raise ValueError(f"extra keys {clashes} are reserved")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "lvt_version": __version__,
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return file_sha256(path)


def load_model(
    path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Any]:
    """Read a model file written by `save_model`; returns (model, config) on `map_location`.

    Raises InputError naming the file when it is missing, unreadable, not ours, of another kind,
    or when its tensors do not fit its config.
    """
    model_class, config_class = _classes(kind)
    payload = read_torch_file(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} file")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: format version {payload.get('version')}, expected {VERSION}")
    if payload.get("kind") != kind:
        raise InputError(f"{path}: holds a {payload.get('kind')!r} model, expected {kind!r}")
    try:
        config = config_class(**payload["config"])
        model = model_class(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not fit the stored {kind} config ({err})") from err
    return model.to(map_location), config
