"""Stage: trim one shard of one split to the manifest's windows, into a clips folder.

The shard is every `ok` row of the split whose position among them, in manifest order, modulo
preprocess.shards is --shard. The folder holds `<video_id>.mp4` per trimmed video (a stream copy
that keeps the source's timestamps and reaches a little beyond the window; lvt.data.clips) and
`manifest.tsv`: the shard's rows with status `failed` and the reason where trimming failed
(`path` stays the source video; the clip is found by its id). Shard 0 also carries the split's
rows that were not `ok` forward, so that every video of the split reaches the final report once.
The folder is written atomically; an empty shard is a folder with a manifest of no rows.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from lvt.atomic import atomic_path
from lvt.config import check_shard
from lvt.data.clips import clips_manifest, trim_rows
from lvt.data.sources import SPLITS, read_manifest, shard_rows, write_manifest
from lvt.stages.common import run_stage, stage_parser

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Trim this shard's videos into --out-dir (settings: preprocess.shards)."""
    shards = settings["preprocess"]["shards"]
    check_shard("preprocess.shards", shards, args.shard)
    rows = shard_rows(read_manifest(args.manifest), args.split, args.shard, shards)
    with atomic_path(args.out_dir) as tmp:
        tmp.mkdir()
        results = trim_rows(rows, tmp)
        write_manifest(clips_manifest(tmp), results)
    trimmed = sum(row.status == "ok" for row in results)
    log.info("%s shard %d: trimmed %d of %d videos", args.split, args.shard, trimmed, len(rows))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--manifest", required=True, help="source manifest (.tsv)")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--shard", required=True, type=int, help="0 .. preprocess.shards - 1")
    parser.add_output("--out-dir", help="clips folder to write")
    run_stage(main, parser, argv)


if __name__ == "__main__":
    cli()
