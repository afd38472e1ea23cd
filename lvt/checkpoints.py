"""Our model file format: one `torch.save` dict, loadable with `torch.load(weights_only=True)`.

Payload: {"format": "lvt-model", "version": 2, "kind": "vqvae" | "transformer",
"config": dataclass fields, "state_dict": tensors, "lvt_version": str, "digest": str, **extra}.
Version 2 added "digest", a SHA-256 of every other field (see `payload_digest`), checked on load
so that a damaged file is an error rather than silently different weights; the training loop's
checkpoints carry the same digest.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from lvt import __version__
from lvt.atomic import write_bytes
from lvt.errors import InputError
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE, VQVAEConfig

FORMAT = "lvt-model"
VERSION = 2
DIGEST = "digest"
KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "vqvae": (VQVAE, VQVAEConfig),
    "transformer": (LatentVideoTransformer, TransformerConfig),
}
RESERVED = ("format", "version", "kind", "config", "state_dict", "lvt_version", DIGEST)
_SCALARS = (str, bytes, int, float, torch.dtype, torch.device)


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


def _feed(digest: Any, value: Any) -> None:
    """Add `value` to `digest` unambiguously: each part says its type and length."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"mapping:{len(value)}:".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, _SCALARS):
        text = repr(value)
        digest.update(f"{type(value).__name__}:{len(text)}:{text}".encode())
    else:
        raise TypeError(f"cannot digest a {type(value).__name__}")


def payload_digest(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of every field of `payload` but its digest: tensors by dtype, shape and bytes,
    other values by type and `repr`, in the payload's order (which `torch.load` keeps)."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in payload.items() if key != DIGEST})
    return digest.hexdigest()


def write_payload(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> str:
    """Write `payload` with its digest (replacing any it holds) atomically; return the file's
    SHA-256.

    Serialising into memory names the archive's root folder after no file, so the same payload
    always gives the same bytes, and the bytes reach the disk through Python's file I/O.
    """
    buffer = io.BytesIO()
    torch.save({**payload, DIGEST: payload_digest(payload)}, buffer)
    data = buffer.getvalue()
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def check_digest(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """InputError naming `path` unless `payload` holds a digest that matches its contents."""
    stored = payload.get(DIGEST)
    if stored is None:
        raise InputError(f"{path}: carries no digest of its contents")
    try:
        actual = payload_digest(payload)
    except TypeError as err:
        raise InputError(f"{path}: holds a value we never write ({err})") from None
    if actual != stored:
        raise InputError(f"{path}: contents do not match their digest; the file is damaged")


def read_payload(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a file written by `write_payload` and check its digest (`what` names it in errors)."""
    payload = read_torch_file(path, what)
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not a {what}")
    check_digest(path, payload)
    return payload


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
    """Write a model file atomically; return its SHA-256 (equal payloads, equal bytes)."""
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
    return write_payload(path, payload)


def load_model(
    path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Any]:
    """Read a model file written by `save_model`; returns (model, config) on `map_location`.

    Raises InputError naming the file when it is missing, unreadable, not ours, damaged (its
    digest does not match), of another kind, or when its tensors do not fit its config.
    """
    model_class, config_class = _classes(kind)
    payload = read_torch_file(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} file")
    version = payload.get("version")
    if version != VERSION:
        hint = "; it carries no digest of its contents, so re-create it" if version == 1 else ""
        raise InputError(f"{path}: format version {version}, expected {VERSION}{hint}")
    check_digest(path, payload)
    if payload.get("kind") != kind:
        raise InputError(f"{path}: holds a {payload.get('kind')!r} model, expected {kind!r}")
    try:
        config = config_class(**payload["config"])
        model = model_class(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not fit the stored {kind} config ({err})") from err
    return model.to(map_location), config
