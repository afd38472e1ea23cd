"""The warnings of a run, for the console at its end (the workflow's `onsuccess`/`onerror`).

The stages log skipped and failed videos and mixed frame rates, but only into their job logs,
which nobody reads when a job succeeds. This summary gathers them from the run's outputs: per
split, how many videos were skipped or failed and why (the first few), and how many videos have
which frame rate when they differ.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from lvt.data.dataset import VideoArrays
from lvt.data.sources import SPLITS, SourceRow, read_manifest
from lvt.errors import InputError

EXAMPLES = 3
"""Skipped or failed videos quoted per split; the split's report lists them all."""
REASON_CHARS = 150
"""Characters of a reason quoted (ffmpeg's messages can run long)."""


def run_summary(results: str | os.PathLike[str]) -> str:
    """The warnings of the run whose outputs are in `results` (results/<run>); '' if none.

    Videos come from each split's report (data/<split>.tsv), or from the source manifest
    (sources/manifest.tsv) while the report is missing or older than it (the run stopped before
    packing that split); frame rates from each split's dataset (data/<split>.h5). A file that
    cannot be read is named in the summary instead.
    """
    root = Path(results)
    lines: list[str] = []
    rates: Counter[float] = Counter()
    for split in SPLITS:
        report = _report(root, split)
        dataset = root / "data" / f"{split}.h5"
        try:
            if report is not None:
                rows = [row for row in read_manifest(report) if row.split == split]
                lines += _problems(split, rows, report)
            if dataset.is_file():
                rates.update(round(float(rate), 3) for rate in VideoArrays(dataset).fps)
        except InputError as error:
            lines.append(f"{split}: cannot summarise, {error}")
    if len(rates) > 1:
        counts = ", ".join(
            f"{f'{rate:g}' if rate else 'unknown'} fps: {count}"
            for rate, count in rates.most_common()
        )
        lines.append(f"videos of {len(rates)} frame rates ({counts}); GIFs and samples use each "
                     "video's own, preprocess.fps resamples all to one")
    if not lines:
        return ""
    return "\n".join([f"Warnings of the run in {root}:", *(f"  {line}" for line in lines)])


def _report(root: Path, split: str) -> Path | None:
    """The freshest list of a split's videos: its report, else the source manifest, else None."""
    report, manifest = root / "data" / f"{split}.tsv", root / "sources" / "manifest.tsv"
    if report.is_file() and (
        not manifest.is_file() or report.stat().st_mtime >= manifest.stat().st_mtime
    ):
        return report
    return manifest if manifest.is_file() else None


def _problems(split: str, rows: list[SourceRow], origin: Path) -> list[str]:
    """Lines on a split's skipped and failed videos: counts, the first few with their reasons."""
    bad = [row for row in rows if row.status != "ok"]
    if not bad:
        return []
    counts = Counter(row.status for row in bad)
    lines = [f"{split}: {counts['skipped']} skipped and {counts['failed']} failed of "
             f"{len(rows)} videos (all listed in {origin})"]
    for row in bad[:EXAMPLES]:
        reason = row.reason if len(row.reason) <= REASON_CHARS else row.reason[:REASON_CHARS] + "…"
        lines.append(f"  {row.path or row.video_id}: {row.status}, {reason or 'no reason given'}")
    if len(bad) > EXAMPLES:
        lines.append(f"  and {len(bad) - EXAMPLES} more")
    return lines
