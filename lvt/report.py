"""The pipeline's results for people: training curves and per-step scores as SVG plots, every
score in an HTML table, sample videos on HTML pages beside the sample stage's contact sheets.
`snakemake --report` gathers these files into one report.

Snakemake's report shows PNG, SVG and JPEG files as images and HTML files in a frame, but offers
GIFs only as downloads, so the sample GIFs are embedded in small self-contained HTML pages.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lvt.errors import InputError

SMOOTHING_POINTS = 20
"""Logged training values are single-batch values; the solid lines average over about this many
rows (see `smoothed`)."""


@dataclass(frozen=True)
class Plot:
    """One figure: some training metrics against the step."""

    title: str
    ylabel: str
    series: dict[str, np.ndarray]
    """Single-batch values: drawn faint as logged and solid smoothed."""
    log_scale: bool = False
    bits_and_nats: bool = False
    """Bits on the left axis, the same values in nats on the right one."""
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    """Values on fixed held-out data, logged at some rows (NaN at the others): drawn as they
    are, point by point, since they carry no batch-to-batch noise to smooth."""


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """The columns of a training metrics CSV (a `step` column and metrics) as float arrays; an
    empty cell (a metric not evaluated at that row) reads as NaN."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise InputError(f"{path}: cannot read the training metrics ({error})") from error
    if not rows or "step" not in rows[0]:
        raise InputError(f"{path}: no rows of training metrics with a 'step' column")
    try:
        return {name: np.array([float(row[name] or "nan") for row in rows]) for name in rows[0]}
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: a missing or non-numeric value ({error})") from error


def _columns(metrics: dict[str, np.ndarray], path: Path, *names: str,
             every_row: bool = True) -> dict[str, np.ndarray]:
    """The named columns; each must have a value in every row (`every_row`) or in some."""
    missing = [name for name in names if name not in metrics]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)} in the training metrics")
    for name in names:
        empty = np.isnan(metrics[name])
        if empty.any() if every_row else empty.all():
            raise InputError(f"{path}: a missing value in column {name} of the training metrics")
    return {name: metrics[name] for name in names}


def vqvae_plots(metrics: dict[str, np.ndarray], path: Path) -> dict[str, Plot]:
    """Loss, reconstruction PSNR and per-codebook perplexity of VQ-VAE training (read from path)."""
    perplexities = sorted((name for name in metrics if name.startswith("perplexity_")),
                          key=lambda name: int(name.rsplit("_", 1)[1]))
    if not perplexities:
        raise InputError(f"{path}: no perplexity_<codebook> columns in the training metrics")
    return {
        "vqvae_loss": Plot("VQ-VAE training loss", "loss", _columns(
            metrics, path, "loss", "loss_reconstruction", "loss_commitment"), log_scale=True),
        "vqvae_psnr": Plot("VQ-VAE reconstruction PSNR on training batches", "PSNR (dB)",
                           _columns(metrics, path, "psnr")),
        "vqvae_perplexity": Plot("VQ-VAE codebook perplexity (codes in use)", "perplexity",
                                 _columns(metrics, path, *perplexities)),
    }


def transformer_plots(metrics: dict[str, np.ndarray], path: Path) -> dict[str, Plot]:
    """Bits per code of the transformer (read from path): the training loss, and the held-out
    (test split) bits per code of the rows where training evaluated it."""
    return {
        "transformer_bits_per_code": Plot(
            "Transformer bits per code: training batches and held-out test clips",
            "bits per code", _columns(metrics, path, "bits_per_code"), bits_and_nats=True,
            exact=_columns(metrics, path, "held_out_bits_per_code", every_row=False)),
    }


def smoothed(values: np.ndarray, points: int) -> np.ndarray:
    """Exponentially weighted mean of each value and those before it, with the decay whose mean
    age equals that of a `points`-value window, and normalised by the weights present (so the
    first values are not pulled towards 0).

    Unlike a moving window, a value's weight fades gradually: the line has no jump when an early
    value (a first loss far above the rest) would leave the window.
    """
    decay = (points - 1) / (points + 1)
    result = np.empty(len(values))
    total = weight = 0.0
    for index, value in enumerate(values):
        total = decay * total + value
        weight = decay * weight + 1.0
        result[index] = total / weight
    return result


def save_plot(steps: np.ndarray, plot: Plot, path: Path) -> None:
    """Draw `plot` against `steps` (faint: as logged; solid: smoothed; exact series with a dot
    at each value) into an image file.

    The format follows the file's suffix (.svg, .png). Figure draws without pyplot, so no GUI
    backend or display is involved.
    """
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = figure.add_subplot()
    for index, (name, values) in enumerate(plot.series.items()):
        colour = f"C{index}"
        axes.plot(steps, values, color=colour, alpha=0.3, linewidth=0.8)
        axes.plot(steps, smoothed(values, SMOOTHING_POINTS), color=colour, label=name)
    for index, (name, values) in enumerate(plot.exact.items(), start=len(plot.series)):
        logged = ~np.isnan(values)
        axes.plot(steps[logged], values[logged], color=f"C{index}", marker=".", label=name)
    if plot.log_scale:
        axes.set_yscale("log")
    if plot.bits_and_nats:
        axes.secondary_yaxis("right", functions=(lambda bits: bits * math.log(2),
                                                 lambda nats: nats / math.log(2))
                             ).set_ylabel("nats per code")
    axes.set(title=plot.title, xlabel="training step", ylabel=plot.ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path)


PER_STEP_SCORES = {"psnr_db": "PSNR (dB)", "ssim": "SSIM"}
"""The per-step scores of frame_scores.json that the per-step figure shows, with axis labels."""
PER_STEP_CURVES = (
    ("{score}_mean", "model: mean over its {k} samples", "C0", "-"),
    ("{score}_best_of_k", "model: best of its {k} samples (oracle)", "C0", "--"),
    ("copy_last_frame_{score}", "copy last frame (baseline)", "C3", "-"),
    ("reconstruction_{score}", "VQ-VAE reconstruction (ceiling)", "C2", ":"),
)
"""The lines of each panel: key in `per_step` (of `{score}`), label, colour, line style."""


def save_per_step_plot(frame_scores: Path, path: Path) -> None:
    """Draw PSNR and SSIM per predicted frame of a frame_scores.json file (model mean and best of
    K, copy-last-frame, reconstruction) into an image file, one panel per score."""
    scores = read_json(frame_scores)
    try:
        per_step, k = scores["per_step"], scores["k"]
        frames = per_step["frame"]
        panels = {score: [(np.asarray(per_step[key.format(score=score)], dtype=float),
                           label.format(k=k), colour, style)
                          for key, label, colour, style in PER_STEP_CURVES]
                  for score in PER_STEP_SCORES}
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{frame_scores}: not per-step frame scores ({error!r})") from error
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    for axes, (score, lines) in zip(figure.subplots(1, len(panels)), panels.items(), strict=True):
        for values, label, colour, style in lines:
            axes.plot(frames, values, color=colour, linestyle=style, marker=".", label=label)
        axes.set(title=f"{PER_STEP_SCORES[score]} per predicted frame", xlabel="frame of the clip",
                 ylabel=PER_STEP_SCORES[score])
        axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path)


PAGE_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #1e293b; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border-bottom: 1px solid #cbd5e1; padding: 0.3em 0.8em; text-align: left; }
td.value { font-family: monospace; text-align: right; }
tr.group th { background: #e2e8f0; }
figure { display: inline-block; margin: 0 1.5em 1.5em 0; }
img { image-rendering: pixelated; }
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page: Snakemake's report shows it in a frame, links and all."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def read_json(path: Path) -> Any:
    """A JSON file's content; InputError naming the file if it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error})") from error


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects as (dotted key, value) rows, in the file's order."""
    if not isinstance(data, dict):
        return [(prefix or "value", data)]
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return rows


def is_protocol(key: str) -> bool:
    """Whether a dotted key describes how a score was measured (a `protocol...` part)."""
    return any(part.lower().startswith("protocol") for part in key.split("."))


def format_value(value: Any) -> str:
    """A score for people: floats to 4 significant digits, lists item by item, at most 120 chars."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, int | str):
        text = str(value)
    elif isinstance(value, list):
        text = f"[{', '.join(format_value(item) for item in value)}]"
    else:
        text = json.dumps(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


def _rows(group: str, rows: list[tuple[str, Any]]) -> str:
    if not rows:
        return ""
    cells = "".join(
        f'<tr><td>{html.escape(key)}</td><td class="value" title="{html.escape(repr(value))}">'
        f"{html.escape(format_value(value))}</td></tr>\n"
        for key, value in rows
    )
    return f'<tr class="group"><th colspan="2">{group}</th></tr>\n{cells}'


def scores_page(files: list[Path]) -> str:
    """Every value of every score file, one table per file: its protocol rows, then its scores."""
    sections = []
    for path in files:
        rows = flatten(read_json(path))
        protocol = [(key, value) for key, value in rows if is_protocol(key)]
        scores = [(key, value) for key, value in rows if not is_protocol(key)]
        sections.append(
            f"<h2>{html.escape(str(path))}</h2>\n<table>\n"
            f"{_rows('protocol', protocol)}{_rows('scores', scores)}</table>"
        )
    return html_page("Scores", "\n".join(sections))


def data_uri(path: Path, mime: str) -> str:
    """A file's bytes inline, so that a page needs nothing beside it."""
    try:
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error})") from error
    return f"data:{mime};base64,{payload}"


@dataclass(frozen=True)
class ContactSheets:
    """The sample stage's contact sheets: the overview of its first `overview_videos` videos,
    and one per sampled test video keyed by the stage's folder name for it."""

    overview: Path
    overview_videos: int
    per_video: dict[str, Path]


def contact_sheets(samples: Path) -> ContactSheets:
    """The contact sheets that the sample stage's index.json lists in the folder `samples`."""
    index = read_json(samples / "index.json")
    try:
        per_video = {Path(entry["gif"]).parent.name: samples / entry["contact_sheet"]
                     for entry in index["samples"]}
        sheets = ContactSheets(samples / index["contact_sheet"], index["contact_sheet_videos"],
                               per_video)
    except (KeyError, TypeError) as error:
        raise InputError(f"{samples / 'index.json'}: not a sample index with contact sheets "
                         f"({error!r})") from error
    for path in (sheets.overview, *per_video.values()):
        if not path.is_file():
            raise InputError(f"{path}: the contact sheet that {samples / 'index.json'} lists "
                             "is missing")
    return sheets


def sample_pages(samples: Path) -> dict[str, str]:
    """One HTML page per sampled test video, keyed by the sample stage's folder name for it.

    Each shows the sample stage's GIFs (real clip left, sample right, priming frames framed).
    """
    index = read_json(samples / "index.json")
    try:
        entries, n_prime, temperature = index["samples"], index["n_prime"], index["temperature"]
        by_folder: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_folder.setdefault(Path(entry["gif"]).parent.name, []).append(entry)
    except (KeyError, TypeError) as error:
        raise InputError(f"{samples / 'index.json'}: not a sample index ({error!r})") from error
    pages = {}
    for folder, videos in by_folder.items():
        figures = "\n".join(
            f'<figure><img alt="sample {entry["sample"]}" '
            f'src="{data_uri(samples / entry["gif"], "image/gif")}">'
            f"<figcaption>left: ground truth, right: sample {entry['sample']}</figcaption></figure>"
            for entry in videos
        )
        intro = (f"<p>The first {n_prime} frame(s), framed in red, were given to the model; "
                 f"it sampled the rest at temperature {temperature}.</p>")
        pages[folder] = html_page(f"Test video {videos[0]['video_id']}", intro + figures)
    return pages
