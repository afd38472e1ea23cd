"""The checks stages make of their settings beyond the schema: a shard that exists, and what a
Kinetics-600 download needs; each failure names the key and the problem."""

from __future__ import annotations

import pytest

from lvt.config import ConfigError, check_kinetics_download, check_shard, validate


@pytest.mark.parametrize(("shards", "shard"), [(1, 0), (4, 0), (4, 3)])
def test_a_shard_of_the_configured_jobs_passes(shards: int, shard: int) -> None:
    check_shard("preprocess.shards", shards, shard)


@pytest.mark.parametrize(("shards", "shard"), [(4, 4), (4, 9), (4, -1), (1, 1)])
def test_a_shard_out_of_range_names_the_key_and_both_numbers(shards: int, shard: int) -> None:
    message = (f"config key preprocess.shards: is {shards}, so --shard {shard} is out of "
               "range")
    with pytest.raises(ConfigError, match=f"^{message}$"):
        check_shard("preprocess.shards", shards, shard)


def kinetics(**changes: object) -> dict:
    """Validated source.kinetics600 settings: both CSVs, 4 shards, and `changes`."""
    section = {"train_csv": "train.csv", "test_csv": "test.csv", "shards": 4, **changes}
    return validate({"source": {"kinetics600": section}})["source"]["kinetics600"]


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("url_template", [
    "https://www.youtube.com/watch?v={youtube_id}",
    "http://127.0.0.1:8000/{youtube_id}.mp4?again={youtube_id}",
    "file:///videos/all.mp4",
])
def test_a_complete_download_setting_passes(split: str, url_template: str) -> None:
    check_kinetics_download(kinetics(url_template=url_template), split, 3)


@pytest.mark.parametrize("shard", [4, -1])
def test_a_download_shard_out_of_range_names_the_shards_key(shard: int) -> None:
    with pytest.raises(ConfigError, match=rf"^config key source\.kinetics600\.shards: is 4, so "
                                          rf"--shard {shard} is out of range$"):
        check_kinetics_download(kinetics(), "train", shard)


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_split_needs_its_csv(split: str) -> None:
    settings = kinetics(**{f"{split}_csv": None})
    with pytest.raises(ConfigError, match=rf"^config key source\.kinetics600\.{split}_csv: "
                                          "required$"):
        check_kinetics_download(settings, split, 0)
    other = "test" if split == "train" else "train"
    check_kinetics_download(settings, other, 0)


@pytest.mark.parametrize(("url_template", "error"), [
    ("https://example.com/{video}", "KeyError"),
    ("https://example.com/{}", "IndexError"),
    ("https://example.com/{youtube_id", "ValueError"),
    ("https://example.com/{youtube_id!z}", "ValueError"),
])
def test_the_url_template_may_hold_no_other_placeholder(url_template: str, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_kinetics_download(kinetics(url_template=url_template), "train", 0)
    message = str(raised.value)
    assert message.startswith("config key source.kinetics600.url_template: may hold no other "
                              "placeholder than {youtube_id} (")
    assert error in message
