"""BAIR robot pushing: TFRecord reading, resumable download, tar unpacking, the real workflow.

The TFRecords are written here byte by byte in BAIR's key layout (protobuf encoded by hand, CRC32C
in pure Python), so the reader is checked against an independent writer.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_workflow import copy_workflow, snakemake, write_config

from lvt.data.bair import (
    download,
    extract_tfrecords,
    parse_example,
    read_bair_examples,
    read_tfrecord,
)
from lvt.data.dataset import CHUNK_ITEMS
from lvt.data.sources import read_manifest
from lvt.errors import InputError

STEPS = 30


# --- an independent TFRecord / tf.train.Example writer ---

def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


CRC_TABLE = _crc32c_table()


def masked_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def bytes_feature(value: bytes) -> bytes:
    return field(1, field(1, value))


def float_feature(values: np.ndarray, packed: bool) -> bytes:
    if packed:
        return field(2, field(1, values.astype("<f4").tobytes()))
    return field(2, b"".join(varint(1 << 3 | 5) + struct.pack("<f", v) for v in values))


def int64_feature(values: list[int]) -> bytes:
    return field(3, field(1, b"".join(varint(v) for v in values)))


def example(features: dict[str, bytes]) -> bytes:
    entries = b"".join(field(1, field(1, key.encode()) + field(2, value))
                       for key, value in features.items())
    return field(1, entries)


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc(length)) + data
            + struct.pack("<I", masked_crc(data)))


def trajectory(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (STEPS, 64, 64, 3), dtype=np.uint8),
            rng.normal(size=(STEPS, 4)).astype(np.float32),
            rng.normal(size=(STEPS, 3)).astype(np.float32))


def bair_example(seed: int) -> bytes:
    """One trajectory in BAIR's key layout (both cameras, actions packed, positions not)."""
    frames, actions, positions = trajectory(seed)
    main_camera = np.ascontiguousarray(frames[:, ::-1])
    features = {}
    for step in range(STEPS):
        features[f"{step}/action"] = float_feature(actions[step], packed=True)
        features[f"{step}/endeffector_pos"] = float_feature(positions[step], packed=False)
        features[f"{step}/image_aux1/encoded"] = bytes_feature(frames[step].tobytes())
        features[f"{step}/image_main/encoded"] = bytes_feature(main_camera[step].tobytes())
    return example(features)


def write_tfrecord(path: Path, seeds: list[int]) -> list[int]:
    """Write one trajectory per seed; returns each record's byte offset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets, data = [], b""
    for seed in seeds:
        offsets.append(len(data))
        data += record(bair_example(seed))
    path.write_bytes(data)
    return offsets


# --- reading ---

def test_examples_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "traj_0_to_2.tfrecords"
    offsets = write_tfrecord(path, [1, 2, 3])
    examples = list(read_bair_examples(path))
    assert [e.video_id for e in examples] == [f"traj_0_to_2/{k}" for k in (1, 2, 3)]
    assert [e.offset for e in examples] == offsets
    for seed, found in zip([1, 2, 3], examples, strict=True):
        frames, actions, positions = trajectory(seed)
        np.testing.assert_array_equal(found.frames, frames)
        np.testing.assert_array_equal(found.extras["actions"], actions)
        np.testing.assert_array_equal(found.extras["endeffector_pos"], positions)


def test_example_parser_reads_int64_and_unknown_fields() -> None:
    data = example({"n": int64_feature([3, -2, 2**40]), "s": bytes_feature(b"abc")})
    data += varint(7 << 3 | 0) + varint(5)  # an unknown field is skipped
    parsed = parse_example(data)
    assert parsed["n"].tolist() == [3, -2, 2**40]
    assert parsed["s"] == [b"abc"]


def test_flipped_byte_names_the_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.tfrecords"
    offsets = write_tfrecord(path, [1, 2])
    data = bytearray(path.read_bytes())
    data[offsets[1] + 5000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: record at byte {offsets[1]}: "
                                         "data CRC mismatch"):
        list(read_bair_examples(path))
    data[offsets[1] + 5000] ^= 0x01
    data[offsets[1] + 3] ^= 0x10  # inside the length
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"record at byte {offsets[1]}: length CRC mismatch"):
        list(read_tfrecord(path))


def test_truncated_file_names_the_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "short.tfrecords"
    offsets = write_tfrecord(path, [1, 2])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: record at byte {offsets[1]}: "
                                         "truncated"):
        list(read_bair_examples(path))


def test_record_that_is_not_bair_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "other.tfrecords"
    path.write_bytes(record(example({"0/image_aux1/encoded": bytes_feature(b"x" * 10)})))
    with pytest.raises(InputError, match="record at byte 0: .*12288 bytes"):
        list(read_bair_examples(path))


# --- download ---

class FlakyServer(ThreadingHTTPServer):
    """Serves `payload` at every path with Range support; can break off a response midway."""

    def __init__(self, payload: bytes, break_first: bool, honour_range: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = payload
        self.break_next = break_first
        self.honour_range = honour_range
        self.ranges: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/bair_robot_pushing_dataset_v0.tar"


class _Handler(BaseHTTPRequestHandler):
    server: FlakyServer

    def do_GET(self) -> None:
        if not self.path.endswith(".tar"):
            self.send_error(404)
            return
        data, requested = self.server.payload, self.headers.get("Range")
        self.server.ranges.append(requested)
        start = 0
        if requested and self.server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested)[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.break_next:
            self.server.break_next = False
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def serving(server: FlakyServer) -> Iterator[FlakyServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).bytes(3_000_000)


def test_broken_download_resumes_with_a_range_request(tmp_path: Path, payload: bytes) -> None:
    for server in serving(FlakyServer(payload, break_first=True)):
        target = download(server.url, tmp_path / "bair.tar", len(payload), progress=False,
                          retry_wait=0)
        assert server.ranges == [None, f"bytes={len(payload) // 2}-"]
    assert target.read_bytes() == payload
    assert not (tmp_path / "bair.tar.part").exists()


def test_server_ignoring_range_restarts_the_transfer(tmp_path: Path, payload: bytes) -> None:
    (tmp_path / "bair.tar.part").write_bytes(b"stale bytes from some other file")
    for server in serving(FlakyServer(payload, break_first=False, honour_range=False)):
        download(server.url, tmp_path / "bair.tar", len(payload), progress=False)
        assert server.ranges == ["bytes=32-"]
    assert (tmp_path / "bair.tar").read_bytes() == payload


def test_wrong_size_or_url_is_an_input_error(tmp_path: Path, payload: bytes) -> None:
    for server in serving(FlakyServer(payload, break_first=False)):
        with pytest.raises(InputError, match=r"offers 3000000 bytes, expected 3000001"):
            download(server.url, tmp_path / "bair.tar", len(payload) + 1, progress=False)
        with pytest.raises(InputError, match=rf"{re.escape(server.url)}.gz: HTTP 404"):
            download(server.url + ".gz", tmp_path / "bair.tar", None, progress=False)
    assert not (tmp_path / "bair.tar").exists()


# --- unpacking ---

def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


HOSTILE_MEMBERS = {  # member -> why it is skipped
    "softmotion30_44k/train/x$(touch PWNED).tfrecords": "file name has characters",
    "softmotion30_44k/train/a b.tfrecords": "file name has characters",
    "softmotion30_44k/test/-rf.tfrecords": "starts with '.' or '-'",
    "softmotion30_44k/test/.hidden.tfrecords": "starts with '.' or '-'",
    "softmotion30_44k/test/traj\u00e9.tfrecords": "file name has characters",
}


def test_only_safe_tfrecord_members_are_unpacked(tmp_path: Path) -> None:
    tfrecord = record(b"payload")
    wanted = ["softmotion30_44k/train/traj_0_to_255.tfrecords",
              "./softmotion30_44k/test/traj_0_to_255.tfrecords"]
    members = {
        "softmotion30_44k/README": b"text",
        "softmotion30_44k/train/notes.txt": b"text",
        "other/softmotion30_44k/train/x.tfrecords": tfrecord,
        "../x": b"escape",
        "softmotion30_44k/train/../../../escape.tfrecords": tfrecord,
        "/tmp/softmotion30_44k/train/absolute.tfrecords": tfrecord,
        **dict.fromkeys([*wanted, *HOSTILE_MEMBERS], tfrecord),
    }
    links = {"softmotion30_44k/train/link.tfrecords": "/etc/passwd"}
    write_tar(tmp_path / "bair.tar", members, links)
    out = tmp_path / "unpacked" / "softmotion30_44k"
    unpacked = extract_tfrecords(tmp_path / "bair.tar", out)
    assert unpacked.files == [out / "test" / "traj_0_to_255.tfrecords",
                              out / "train" / "traj_0_to_255.tfrecords"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == [
        Path("bair.tar"), *(p.relative_to(tmp_path) for p in unpacked.files)]
    assert [data for _, data in read_tfrecord(unpacked.files[0])] == [b"payload"]
    reasons = dict(unpacked.skipped)
    assert [name for name, _ in unpacked.skipped] == [
        *(name for name in members if name not in wanted), *links]
    for name in ("softmotion30_44k/README", "softmotion30_44k/train/notes.txt",
                 "other/softmotion30_44k/train/x.tfrecords"):
        assert reasons[name] == "not a softmotion30_44k/{train,test}/*.tfrecords file"
    for name in ("../x", "softmotion30_44k/train/../../../escape.tfrecords",
                 "/tmp/softmotion30_44k/train/absolute.tfrecords"):
        assert reasons[name].startswith("unsafe path")
    assert reasons["softmotion30_44k/train/link.tfrecords"] == "not a regular file"
    for name, reason in HOSTILE_MEMBERS.items():
        assert reason in reasons[name]


def test_extract_stage_lists_skipped_members_in_its_log(tmp_path: Path) -> None:
    write_tar(tmp_path / "bair.tar", {
        "softmotion30_44k/train/traj_0_to_255.tfrecords": record(b"payload"),
        **dict.fromkeys(HOSTILE_MEMBERS, record(b"payload")),
    })
    result = subprocess.run(
        [sys.executable, "-m", "lvt.stages.bair_extract", "--tar", str(tmp_path / "bair.tar"),
         "--out-dir", str(tmp_path / "out")], capture_output=True, text=True, check=True)
    for name, reason in HOSTILE_MEMBERS.items():
        assert re.search(rf"skipped member {re.escape(repr(name))}: .*{re.escape(reason)}",
                         result.stderr), result.stderr
    assert f"{len(HOSTILE_MEMBERS)} other members skipped" in result.stderr
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["train", "traj_0_to_255.tfrecords"]


def test_tar_without_tfrecords_is_an_input_error(tmp_path: Path) -> None:
    write_tar(tmp_path / "empty.tar", {"softmotion30_44k/README": b"text"})
    with pytest.raises(InputError, match="empty.tar: no member matches"):
        extract_tfrecords(tmp_path / "empty.tar", tmp_path / "out")


# --- the workflow ---

TFRECORDS = {  # file -> seeds of its trajectories; the tar lists them in reverse order
    "softmotion30_44k/train/traj_2_to_4.tfrecords": [12, 13, 14],
    "softmotion30_44k/train/traj_0_to_1.tfrecords": [10, 11],
    "softmotion30_44k/test/traj_0_to_1.tfrecords": [20, 21],
}


@pytest.mark.slow
def test_workflow_downloads_converts_and_packs_both_splits(tmp_path: Path) -> None:
    # The folder and a member's name hold shell syntax: neither may run as a command.
    hostile = "softmotion30_44k/train/x$(touch PWNED).tfrecords"
    for name, seeds in {**TFRECORDS, hostile: [15]}.items():
        write_tfrecord(tmp_path / "made" / name, seeds)
    write_tar(tmp_path / "bair.tar", {name: (tmp_path / "made" / name).read_bytes()
                                      for name in [*TFRECORDS, hostile]})
    tarball = (tmp_path / "bair.tar").read_bytes()
    workdir = copy_workflow(tmp_path / "workflow")
    folder = tmp_path / "bair data $(touch PWNED)"
    for server in serving(FlakyServer(tarball, break_first=False)):
        config = {"run": "bair", "source": {"kind": "bair", "bair": {
            "url": server.url, "size": len(tarball), "folder": str(folder)}}}
        snakemake(workdir, "results/bair/data/train.h5", "results/bair/data/test.h5",
                  "--configfile", write_config(workdir / "bair.yaml", config))

    results = workdir / "results" / "bair"
    expected = {"train": [("traj_0_to_1", [10, 11]), ("traj_2_to_4", [12, 13, 14])],
                "test": [("traj_0_to_1", [20, 21])]}
    for split, files in expected.items():
        ids = [f"{stem}/{k}" for stem, seeds in files for k in range(1, len(seeds) + 1)]
        seeds = [seed for _, file_seeds in files for seed in file_seeds]
        with h5py.File(results / "data" / f"{split}.h5") as data:
            assert list(data["video_ids"].asstr()[:]) == ids
            assert data["frames"].shape == (STEPS * len(ids), 64, 64, 3)
            assert data["frames"].chunks == (CHUNK_ITEMS, 64, 64, 3)
            assert data["offsets"][:].tolist() == list(range(0, STEPS * len(ids) + 1, STEPS))
            assert data["actions"].shape == (STEPS * len(ids), 4)
            assert dict(data.attrs) | {"lvt_version": ""} == {
                "fps": 10.0, "size": 64, "source": "bair", "split": split, "lvt_version": ""}
            for index, seed in enumerate(seeds):
                frames, actions, positions = trajectory(seed)
                window = slice(STEPS * index, STEPS * (index + 1))
                np.testing.assert_array_equal(data["frames"][window], frames)
                np.testing.assert_array_equal(data["actions"][window], actions)
                np.testing.assert_array_equal(data["endeffector_pos"][window], positions)
        rows = read_manifest(results / "data" / f"{split}.tsv")
        assert [row.video_id for row in rows] == ids
        assert {(row.split, row.status, row.end) for row in rows} == {(split, "ok", 3.0)}
    assert not list((results / "bair").rglob("*.h5")), "temporary shards were kept"
    assert not list(tmp_path.rglob("PWNED")), "a shell ran a command from the folder or tar"
    assert sorted(p.name for p in (folder / "softmotion30_44k").rglob("*.tfrecords")) == [
        "traj_0_to_1.tfrecords", "traj_0_to_1.tfrecords", "traj_2_to_4.tfrecords"]
    assert f"skipped member {hostile!r}: file name" in (
        results / "logs" / "bair" / "extract.log").read_text()
    for rule in ("download", "extract", "convert", "pack"):
        assert list((results / "logs" / "bair").rglob(f"{rule}*")), f"no log for {rule}"
        assert list((results / "benchmarks" / "bair").rglob(f"{rule}*")), f"no benchmark: {rule}"
