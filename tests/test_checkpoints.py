"""Our model files and the `lvt import-original` command."""

from __future__ import annotations

import hashlib
import re
import struct
import subprocess
import sys
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FIXTURES

from lvt.checkpoints import VERSION, file_sha256, load_model, save_model, write_payload
from lvt.cli import main
from lvt.config import paper_model_configs
from lvt.data.dataset import VideoArraysWriter
from lvt.errors import InputError
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.original import import_transformer, import_vqvae

VQ_CONFIG = replace(paper_model_configs()[0], channels=16, residual_channels=8, codebooks=4,
                    codebook_size=8)
VT_CONFIG = TransformerConfig(
    codebooks=2,
    codebook_size=8,
    kernel=(3, 1, 1),
    stride=(4, 1, 1),
    embedding_dim=8,
    model_dim=12,
    head_dim=4,
    heads=2,
    encoder_layers=1,
    decoder_layers=1,
    encoder_block=(1, 4, 4),
    decoder_block=(1, 4, 4),
)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_round_trip_both_kinds(tmp_path):
    torch.manual_seed(0)
    for kind, config, model in (
        ("vqvae", VQ_CONFIG, VQVAE(VQ_CONFIG)),
        ("transformer", VT_CONFIG, LatentVideoTransformer(VT_CONFIG)),
    ):
        path = tmp_path / f"{kind}.pt"
        digest = save_model(path, kind, config, model, extra={"step": 12})
        assert digest == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
        payload = torch.load(path, weights_only=True)
        assert (payload["format"], payload["version"], payload["kind"]) == ("lvt-model", VERSION,
                                                                         kind)
        assert payload["step"] == 12 and isinstance(payload["lvt_version"], str)
        loaded, loaded_config = load_model(path, kind)
        assert loaded_config == config
        assert_same_state(loaded, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transformer.pt", "vqvae.pt"]


def test_config_with_lists_is_accepted(tmp_path):
    path = tmp_path / "vt.pt"
    save_model(path, "transformer", VT_CONFIG, LatentVideoTransformer(VT_CONFIG))
    payload = torch.load(path, weights_only=True)
    payload["config"] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in payload["config"].items()
    }
    write_payload(path, payload)
    assert load_model(path, "transformer")[1] == VT_CONFIG


def test_masked_taps_in_stored_weights_do_not_matter(tmp_path):
    torch.manual_seed(0)
    model = LatentVideoTransformer(VT_CONFIG)
    context = torch.randint(-1, 8, (1, 2, 6, 4, 4))
    codes = torch.randint(0, 8, (1, 2, 1, 4, 4))
    index = torch.tensor([2])
    with torch.no_grad():
        expected = model(context, codes, index)
        model.decoder.causal_conv.weight[:, :, 2, 2, 1:] = 5.0
    save_model(tmp_path / "vt.pt", "transformer", VT_CONFIG, model)
    loaded, _ = load_model(tmp_path / "vt.pt", "transformer")
    with torch.no_grad():
        for actual, wanted in zip(loaded(context, codes, index), expected, strict=True):
            torch.testing.assert_close(actual, wanted)


def test_clear_errors_naming_the_file(tmp_path):
    good = tmp_path / "good.pt"
    save_model(good, "vqvae", VQ_CONFIG, VQVAE(VQ_CONFIG))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    payload["config"]["channels"] = 32
    torch.save(payload, tmp_path / "edited.pt")  # its digest is of the original contents
    write_payload(tmp_path / "misfit.pt", payload)
    payload["config"]["colour"] = "red"
    write_payload(tmp_path / "unknown_key.pt", payload)
    del payload["digest"]
    torch.save(payload, tmp_path / "no_digest.pt")
    torch.save({**payload, "version": 1}, tmp_path / "version_1.pt")
    cases = {
        "missing.pt": ("vqvae", "no such"),
        "corrupt.pt": ("vqvae", "not a readable"),
        "foreign.pt": ("vqvae", "not an lvt-model"),
        "good.pt": ("transformer", "holds a 'vqvae' model"),
        "edited.pt": ("vqvae", "contents do not match their digest"),
        "misfit.pt": ("vqvae", "do not fit"),
        "unknown_key.pt": ("vqvae", "colour"),
        "no_digest.pt": ("vqvae", "carries no digest"),
        "version_1.pt": ("vqvae", "format version 1, expected 2; it carries no digest"),
    }
    for name, (kind, message) in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            load_model(tmp_path / name, kind)
        assert str(tmp_path / name) in str(err.value)


def flip_a_bit_in_a_tensor(path: Path) -> None:
    """Flip one bit in the stored bytes of the file's largest tensor (torch's zip archive holds
    them uncompressed, as `<archive>/data/<n>`)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = max((info for info in archive.infolist()
                     if re.fullmatch(r"[^/]+/data/\d+", info.filename)),
                    key=lambda info: info.file_size)
    assert entry.compress_type == zipfile.ZIP_STORED
    name_length, extra_length = struct.unpack_from("<HH", data, entry.header_offset + 26)
    start = entry.header_offset + 30 + name_length + extra_length
    data[start + entry.file_size // 2] ^= 0x10
    path.write_bytes(data)


def test_a_flipped_bit_in_a_tensor_is_an_error(tmp_path):
    path = tmp_path / "vqvae.pt"
    save_model(path, "vqvae", VQ_CONFIG, VQVAE(VQ_CONFIG))
    flip_a_bit_in_a_tensor(path)
    torch.load(path, weights_only=True)  # torch itself does not notice
    with pytest.raises(InputError, match="contents do not match their digest") as err:
        load_model(path, "vqvae")
    assert str(err.value).startswith(f"{path}: ")


def test_extract_codes_refuses_a_damaged_model(tmp_path):
    model = tmp_path / "vqvae.pt"
    save_model(model, "vqvae", VQ_CONFIG, VQVAE(VQ_CONFIG))
    flip_a_bit_in_a_tensor(model)
    frames = tmp_path / "frames.h5"
    with VideoArraysWriter(frames, "frames", np.uint8, {"fps": 10.0}) as writer:
        writer.add("v", np.zeros((3, 16, 16, 3), np.uint8))
    out = tmp_path / "codes.h5"
    result = subprocess.run([sys.executable, "-m", "lvt.stages.extract_codes", "--model",
                             str(model), "--dataset", str(frames), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert f"{model}: contents do not match their digest" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


SAVE_IN_ANOTHER_PROCESS = f"""
import sys
import torch
from lvt.checkpoints import save_model
from lvt.models.vqvae import VQVAE, VQVAEConfig
torch.manual_seed(0)
config = VQVAEConfig(**{asdict(VQ_CONFIG)!r})
print(save_model(sys.argv[1], "vqvae", config, VQVAE(config)))
"""


def test_the_same_weights_give_the_same_bytes(tmp_path):
    torch.manual_seed(0)
    digest = save_model(tmp_path / "a" / "model.pt", "vqvae", VQ_CONFIG, VQVAE(VQ_CONFIG))
    other = tmp_path / "b" / "vqvae.pt"
    result = subprocess.run([sys.executable, "-c", SAVE_IN_ANOTHER_PROCESS, str(other)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest
    assert other.read_bytes() == (tmp_path / "a" / "model.pt").read_bytes()


def test_save_rejects_bad_arguments(tmp_path):
    model = VQVAE(VQ_CONFIG)
    with pytest.raises(ValueError, match="reserved"):
        save_model(tmp_path / "m.pt", "vqvae", VQ_CONFIG, model, extra={"config": 1})
    with pytest.raises(ValueError, match="TransformerConfig"):
        save_model(tmp_path / "m.pt", "transformer", VQ_CONFIG, model)
    with pytest.raises(ValueError, match="unknown model kind"):
        save_model(tmp_path / "m.pt", "gan", VQ_CONFIG, model)
    assert not list(tmp_path.iterdir())


def test_cli_imports_original_checkpoints(tmp_path, capsys):
    vq = torch.load(FIXTURES / "vqvae_small.pt", weights_only=True)["state_dict"]
    files = {}
    for net, state in vq.items():
        files[net] = tmp_path / net / "model_final.pth"
        files[net].parent.mkdir()
        torch.save({"model": state, "iteration": 500_000}, files[net])
    out = tmp_path / "vqvae.pt"
    argv = ["import-original", "vqvae", "-o", str(out)]
    argv += [f"--{net}={path}" for net, path in files.items()]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model, config = load_model(out, "vqvae")
    assert_same_state(model, import_vqvae(vq["netE"], vq["netG"], vq["netC"])[0])
    provenance = torch.load(out, weights_only=True)["imported_from"]["netC"]
    assert provenance == {"path": str(files["netC"]), "sha256": file_sha256(files["netC"])}

    vt_state = torch.load(FIXTURES / "vt_dssvt_small.pt", weights_only=True)["state_dict"]
    net_g = tmp_path / "vt_model_final.pth"
    torch.save(vt_state, net_g)  # a bare state dict is accepted as well
    for stride in ([], ["--stride", "1", "2", "2"]):
        out = tmp_path / "vt.pt"
        assert (
            main(["import-original", "transformer", "--netG", str(net_g), "-o", str(out), *stride])
            == 0
        )
        model, config = load_model(out, "transformer")
        assert config.stride == (1, 2, 2) and config.decoder_block == (4, 8, 8)
        assert_same_state(model, import_transformer(vt_state)[0])


def test_cli_reports_import_errors(tmp_path, capsys):
    net_g = tmp_path / "netG.pth"
    torch.save({"model": {"encoder.conv.weight": torch.zeros(1)}, "iteration": 1}, net_g)
    out = tmp_path / "vt.pt"
    assert main(["import-original", "transformer", "--netG", str(net_g), "-o", str(out)]) == 1
    assert str(net_g) in capsys.readouterr().err
    assert not out.exists()
