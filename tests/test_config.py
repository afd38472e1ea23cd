"""The one schema: defaults, clear errors naming the key, presets, and Snakemake's use of it."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import yaml
from helpers import overlay

from lvt import config as lvt_config
from lvt.errors import InputError
from lvt.inference import check_models_fit

ROOT = Path(__file__).resolve().parents[1]


def merged(*names: str) -> dict:
    """config.yaml with presets applied in order, as `snakemake --configfile` merges them."""
    result = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name in names:
        overlay(result, yaml.safe_load((ROOT / "presets" / f"{name}.yaml").read_text()))
    return result


def test_defaults_are_the_papers_values() -> None:
    config = lvt_config.validate({})
    assert config["vqvae"]["model"]["codebook_size"] == 512
    assert config["vqvae"]["train"]["betas"] == [0.9, 0.9]
    assert config["transformer"]["train"]["lr"] == 2e-5
    assert config["transformer"]["model"]["stride"] == [16, 1, 1]


@pytest.mark.parametrize(
    ("presets", "n_prime"),
    [
        (["bair"], 1),
        (["bair", "bair_dssvt"], 1),
        (["bair", "bair_dstsvt"], 1),
        (["kinetics600"], 5),
    ],
)
def test_presets_validate(presets: list[str], n_prime: int) -> None:
    assert lvt_config.validate(merged(*presets))["sample"]["n_prime"] == n_prime


@pytest.mark.parametrize(
    ("presets", "protocol"),
    [
        ([], (256, 1, 16, 100, 1)),  # the defaults: BAIR's protocol
        (["bair"], (256, 1, 16, 100, 1)),
        (["kinetics600"], (50000, 5, 16, 1, 1)),
    ],
)
def test_evaluation_protocols(presets: list[str], protocol: tuple[int, ...]) -> None:
    fvd = lvt_config.validate(merged(*presets) if presets else {})["fvd"]
    keys = ("videos", "n_prime", "frames", "samples_per_video", "trials")
    assert tuple(fvd[key] for key in keys) == protocol
    assert fvd["temperature"] == 1.0


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"vqvae": {"train": {"stepz": 3}}}, "vqvae.train"),
        ({"vqvae": {"model": {"channels": "3"}}}, "vqvae.model.channels"),
        (
            {"transformer": {"model": {"decoder_block": [1, 5, 16]}}},
            "transformer.model.decoder_block",
        ),
        ({"transformer": {"model": {"stride": [3, 1, 1]}}}, "transformer.model.stride"),
        ({"source": {"kind": "local"}}, "source.local.path"),
        ({"sample": {"n_prime": 16, "frames": 16}}, "sample.n_prime"),
        ({"source": {"kind": "bair"}, "preprocess": {"size": 32}}, "preprocess.size"),
        ({"fvd": {"n_prime": 5, "frames": 5}}, "fvd.n_prime"),
        ({"fvd": {"frames": 12}, "transformer": {}}, "fvd.frames"),
        ({"fvd": {"videos": 1}}, "fvd.videos"),
    ],
)
def test_errors_name_the_key(bad: dict, key: str) -> None:
    with pytest.raises(lvt_config.ConfigError, match=key.replace(".", r"\.")):
        lvt_config.validate(bad)


@pytest.mark.parametrize(
    ("stride", "encoder_block", "decoder_block", "misfit"),
    [
        ((4, 1, 1), (1, 16, 16), (1, 16, 16), None),
        ((3, 1, 1), (1, 16, 16), (1, 16, 16), "stride"),
        ((1, 1, 3), (1, 16, 16), (1, 16, 16), "stride"),
        ((1, 1, 1), (1, 5, 16), (1, 16, 16), "encoder_block"),
        ((4, 1, 1), (1, 16, 16), (8, 16, 16), "decoder_block"),
    ],
)
def test_config_and_model_files_check_the_tiling_alike(
    tmp_path: Path, stride: tuple, encoder_block: tuple, decoder_block: tuple, misfit: str | None
) -> None:
    """A transformer geometry that does not tile 16 frames of 64x64 (codes 16x16) fails config
    validation naming its key and the clip, and the model-file check naming the file and which
    part; one that tiles passes both."""
    model = {"stride": list(stride), "encoder_block": list(encoder_block),
             "decoder_block": list(decoder_block)}
    config = {"preprocess": {"size": 64},
              "transformer": {"model": model, "train": {"clip_frames": 16}}}
    vqvae, paper = lvt_config.paper_model_configs()
    transformer = replace(paper, stride=stride, encoder_block=encoder_block,
                          decoder_block=decoder_block)
    model_file = tmp_path / "transformer.pt"
    check = partial(check_models_fit, tmp_path / "vqvae.pt", vqvae, model_file, transformer,
                    (16, 16, 16))
    if misfit is None:
        lvt_config.validate(config)
        check()
        return
    with pytest.raises(lvt_config.ConfigError) as config_error:
        lvt_config.validate(config)
    assert f"config key transformer.model.{misfit}: " in str(config_error.value)
    assert "transformer.train.clip_frames" in str(config_error.value)
    with pytest.raises(InputError) as file_error:
        check()
    assert str(model_file) in str(file_error.value)
    if misfit.endswith("_block"):
        name = misfit.removesuffix("_block")
        assert f"{name} attention block {encoder_block if name == 'encoder' else decoder_block}" \
            in str(file_error.value)
        assert f"{name} attention block" in str(config_error.value)


@pytest.mark.parametrize("run", [".", ".."])
def test_run_must_name_a_folder_of_its_own(run: str) -> None:
    # "." would put the outputs straight into results/, ".." into the repository root
    with pytest.raises(lvt_config.ConfigError, match=rf"config key run: '{re.escape(run)}' "):
        lvt_config.validate({"run": run})
    assert lvt_config.validate({"run": f"{run}x"})["run"] == f"{run}x"


def test_stage_settings_check_only_their_sections() -> None:
    # A stage handed only `sample` must not be judged against default transformer settings.
    settings = lvt_config.settings_json({"sample": {"frames": 8}}, "sample")
    assert lvt_config.load_settings(settings)["sample"]["frames"] == 8


def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"transformer": {"model": {"encoder_block": [1, 3, 16]}}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad),
         "--directory", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "transformer.model.encoder_block" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("presets", [["bair"], ["kinetics600"]])
def test_presets_over_the_demo_give_the_papers_settings(presets: list[str]) -> None:
    # Presets are merged over config.yaml: no demo value may leak into a paper setting.
    paper = lvt_config.validate({})
    config = lvt_config.validate(merged(*presets))
    expected_model = {**paper["vqvae"]["model"],
                      "residual_blocks": 4 if presets == ["kinetics600"] else 2}
    assert config["vqvae"]["model"] == expected_model
    assert config["transformer"]["model"] == paper["transformer"]["model"]
    for section, keys in {"vqvae": ["lr", "betas", "batch_size", "seed"],
                          "transformer": ["lr", "lr_decay", "alpha", "momentum", "eps",
                                          "batch_size", "clip_frames", "n_prime", "steps",
                                          "seed"]}.items():
        for key in keys:
            assert config[section]["train"][key] == paper[section]["train"][key], (section, key)


def _leaves(tree: dict, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every non-mapping value of a nested mapping, by its key path."""
    leaves: dict[tuple[str, ...], object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, (*path, key)))
        else:
            leaves[(*path, key)] = value
    return leaves


@pytest.mark.parametrize("preset", sorted(path.stem for path in (ROOT / "presets").glob("*.yaml")))
def test_presets_restate_a_default_only_to_override_the_demo(preset: str) -> None:
    # Defaults live in the schema; a preset repeats one only where config.yaml sets that key.
    defaults = _leaves(lvt_config.validate({}))
    demo = _leaves(yaml.safe_load((ROOT / "config.yaml").read_text()))
    values = _leaves(yaml.safe_load((ROOT / "presets" / f"{preset}.yaml").read_text()))
    repeated = {key for key, value in values.items() if defaults.get(key) == value}
    assert repeated <= set(demo), sorted(repeated - set(demo))


def test_model_configs_follow_the_settings() -> None:
    # The transformer takes its codebooks from the VQ-VAE; the paper's models are the defaults'.
    settings = lvt_config.validate({"vqvae": {"model": {"codebooks": 2, "codebook_size": 64}},
                                    "transformer": {"model": {"heads": 4}}})
    vqvae, transformer = lvt_config.model_configs(settings)
    paper_vqvae, paper_transformer = lvt_config.paper_model_configs()
    assert vqvae == replace(paper_vqvae, codebooks=2, codebook_size=64)
    assert transformer == replace(paper_transformer, codebooks=2, codebook_size=64, heads=4)


def test_conda_environment_matches_the_package_dependencies() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = pyproject.split("dependencies = [")[1].split("]")[0]
    package = sorted(line.strip().strip('",') for line in declared.splitlines() if line.strip())
    environment = yaml.safe_load((ROOT / "envs" / "lvt.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(spec for spec in pip if not spec.startswith("-e")) == package
