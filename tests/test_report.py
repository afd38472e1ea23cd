"""The report: its pieces from the library, and `snakemake --report` opened in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe), so the test
clicks through the report as a person would and looks at what each click shows.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import SETTINGS, snakemake

from lvt.errors import InputError
from lvt.report import (
    contact_sheets,
    flatten,
    is_protocol,
    read_metrics,
    save_per_step_plot,
    save_plot,
    scores_page,
    smoothed,
    transformer_plots,
    vqvae_plots,
)

CHROMIUM = shutil.which("chromium")


def test_scores_page_lists_every_value_with_its_protocol(tmp_path: Path) -> None:
    fvd = tmp_path / "fvd.json"
    fvd.write_text(json.dumps({"fvd": 123.456789, "protocol": {"videos": 256, "frames": 16},
                               "per_run": [120.5, 126.123456], "ok": True}))
    assert flatten(json.loads(fvd.read_text())) == [
        ("fvd", 123.456789), ("protocol.videos", 256), ("protocol.frames", 16),
        ("per_run", [120.5, 126.123456]), ("ok", True)]
    assert is_protocol("fvd.protocol_name") and not is_protocol("fvd.value")
    page = scores_page([fvd])
    protocol, scores = page.split('<th colspan="2">scores</th>')
    assert "protocol.videos" in protocol and ">256<" in protocol and "fvd<" not in protocol
    assert ">123.5<" in scores and ">[120.5, 126.1]<" in scores and ">true<" in scores


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InputError, match="broken.json"):
        scores_page([broken])
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,loss\n5,0.5\n10,x\n")
    with pytest.raises(InputError, match="metrics.csv: a missing or non-numeric"):
        read_metrics(metrics)
    metrics.write_text("step,loss,psnr,perplexity_0\n5,0.5,20,3\n")
    with pytest.raises(InputError, match="no column loss_reconstruction"):
        vqvae_plots(read_metrics(metrics), metrics)
    metrics.write_text("step,loss,loss_reconstruction,loss_commitment,psnr,perplexity_0\n"
                       "5,0.5,0.4,0.1,20,3\n10,,0.4,0.1,21,3\n")
    with pytest.raises(InputError, match="metrics.csv: a missing value in column loss "):
        vqvae_plots(read_metrics(metrics), metrics)
    metrics.write_text("step,bits_per_code,held_out_bits_per_code\n5,3.0,\n10,2.5,\n")
    with pytest.raises(InputError, match="missing value in column held_out_bits_per_code"):
        transformer_plots(read_metrics(metrics), metrics)
    frame_scores = tmp_path / "frame_scores.json"
    frame_scores.write_text(json.dumps({"k": 2, "per_step": {"frame": [1, 2]}}))
    with pytest.raises(InputError, match="frame_scores.json: not per-step frame scores"):
        save_per_step_plot(frame_scores, tmp_path / "per_step.svg")
    assert not (tmp_path / "per_step.svg").exists()
    samples = tmp_path / "samples"
    samples.mkdir()
    entry = {"gif": "v0/sample_0.gif", "contact_sheet": "v0/contact_sheet.png"}
    (samples / "index.json").write_text(json.dumps({"samples": [entry]}))
    with pytest.raises(InputError, match="index.json: not a sample index with contact sheets"):
        contact_sheets(samples)
    (samples / "index.json").write_text(json.dumps(
        {"samples": [entry], "contact_sheet": "contact_sheet.png", "contact_sheet_videos": 1}))
    (samples / "contact_sheet.png").write_bytes(b"")
    with pytest.raises(InputError, match="v0/contact_sheet.png: the contact sheet that"):
        contact_sheets(samples)


def test_smoothed_line_has_no_jump_where_early_values_fade() -> None:
    """A first loss far above the rest (as at the start of training) fades out of the smoothed
    line step by step: it falls ever more slowly, never suddenly where a window would drop it."""
    values = np.array([10.0] + [1.0] * 99)
    line = smoothed(values, 20)
    assert line[0] == 10.0 and line[-1] == pytest.approx(1.0, abs=1e-3)
    falls = -np.diff(line)
    assert (falls > 0).all() and (np.diff(falls) <= 1e-12).all()
    np.testing.assert_allclose(smoothed(np.full(50, 3.0), 20), 3.0)  # a mean, not biased to 0
    noisy = 2 + np.random.default_rng(0).normal(0, 0.5, 400)
    assert np.std(smoothed(noisy, 20)[50:]) < np.std(noisy) / 3


def test_transformer_plot_shows_the_held_out_curve(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    rows = [f"{step},{4 / step ** 0.3},{4.5 / step ** 0.2 if step % 100 == 0 else ''}"
            for step in range(20, 1020, 20)]
    metrics.write_text("step,bits_per_code,held_out_bits_per_code\n" + "\n".join(rows) + "\n")
    columns = read_metrics(metrics)
    assert np.isnan(columns["held_out_bits_per_code"]).sum() == 40
    plot = transformer_plots(columns, metrics)["transformer_bits_per_code"]
    assert list(plot.series) == ["bits_per_code"] and list(plot.exact) == ["held_out_bits_per_code"]
    save_plot(columns["step"], plot, tmp_path / "bits.svg")
    svg = (tmp_path / "bits.svg").read_text()
    assert "held-out" in svg and "held_out_bits_per_code" in svg and "nats per code" in svg


def test_per_step_plot_shows_the_model_beside_its_baselines(tmp_path: Path) -> None:
    steps = np.arange(1, 6)
    per_step = {"frame": steps.tolist()}
    for name, scale in (("psnr_db", 30.0), ("ssim", 1.0)):
        per_step |= {f"{name}_mean": (scale * 0.7 - steps).tolist(),
                     f"{name}_best_of_k": (scale * 0.8 - steps).tolist(),
                     f"copy_last_frame_{name}": (scale * 0.75 - 2 * steps).tolist(),
                     f"reconstruction_{name}": [scale * 0.95] * 5}
    frame_scores = tmp_path / "frame_scores.json"
    frame_scores.write_text(json.dumps({"k": 3, "per_step": per_step}))
    save_per_step_plot(frame_scores, tmp_path / "per_step.svg")
    svg = (tmp_path / "per_step.svg").read_text()
    for text in ("PSNR (dB) per predicted frame", "SSIM per predicted frame",
                 "model: mean over its 3 samples", "model: best of its 3 samples (oracle)",
                 "copy last frame (baseline)", "VQ-VAE reconstruction (ceiling)"):
        assert text in svg, text


def test_plot_is_an_svg_with_every_series(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    rows = [f"{step},{1 / step},{0.8 / step},{0.2 / step},{20 + step / 10},7,9" for step in
            range(5, 105, 5)]
    metrics.write_text("step,loss,loss_reconstruction,loss_commitment,psnr,perplexity_1,"
                       "perplexity_0\n" + "\n".join(rows) + "\n")
    plots = vqvae_plots(read_metrics(metrics), metrics)
    assert list(plots["vqvae_perplexity"].series) == ["perplexity_0", "perplexity_1"]
    save_plot(np.arange(5, 105, 5), plots["vqvae_loss"], tmp_path / "loss.svg")
    svg = (tmp_path / "loss.svg").read_text()
    assert svg.startswith("<?xml") and "VQ-VAE training loss" in svg
    assert all(name in svg for name in ("loss_reconstruction", "loss_commitment"))


class DevToolsError(AssertionError):
    """A command that Chromium answered with an error."""


FRAME_CONTEXT_GONE = ("Cannot find context with specified id", "Execution context was destroyed")
"""The errors of an evaluation in a frame that navigated (about:blank to its document) after its
execution context was looked up."""


class Chromium:
    """Headless Chromium and one page in it, driven over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Chromium reads commands from fd 3 and writes replies to fd 4; move the pipe ends
        # above fd 4 first so that placing one does not overwrite the other.
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                      for fd in (commands_read, replies_write)]
        os.close(commands_read)
        os.close(replies_write)

        def place_pipe_ends() -> None:
            os.dup2(child_ends[0], 3)
            os.dup2(child_ends[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "--window-size=1400,900", "about:blank"],
            pass_fds=(3, 4), preexec_fn=place_pipe_ends,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for fd in child_ends:
            os.close(fd)
        self._next_id = 0
        self._buffer = b""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target,
                                  flatten=True)["sessionId"]
        self.send("Page.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if getattr(self, "_session", None):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise AssertionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str, context: int | None = None) -> Any:
        """The value of a JavaScript expression in the page (or in an execution context)."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True,
                                  "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        result = self.send("Runtime.evaluate", **params)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """The first true value of `expression`, polled until `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && !!document.querySelector('nav ul a')")

    def click(self, text: str) -> None:
        """Click the link whose text is `text`."""
        self.wait_for(f"[...document.querySelectorAll('a')].some(a => a.textContent.trim() === "
                      f"{json.dumps(text)})")
        self.evaluate(f"[...document.querySelectorAll('a')].find(a => a.textContent.trim() === "
                      f"{json.dumps(text)}).click()")

    def in_frame(self, expression: str, timeout: float = 30.0) -> Any:
        """The first true value of `expression` in the page's one frame (where Snakemake shows
        an HTML result), polled until `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = self.send("Page.getFrameTree")["frameTree"].get("childFrames", [])
            assert len(children) <= 1, children
            if children:
                context = self.send("Page.createIsolatedWorld",
                                    frameId=children[0]["frame"]["id"])["executionContextId"]
                try:
                    value = self.evaluate(expression, context)
                except DevToolsError as error:
                    if not any(gone in str(error) for gone in FRAME_CONTEXT_GONE):
                        raise
                    value = None
                if value:
                    return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression} in the frame")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot")["data"]))

    def close(self) -> None:
        self._session = None
        try:
            self.send("Browser.close")
        finally:
            self.process.wait(timeout=30)
            os.close(self._commands)
            os.close(self._replies)


RESULT_ROWS = "document.querySelectorAll('table tbody tr').length"
VIEW_BUTTONS = "[...document.querySelectorAll('table tbody tr')].map(row => row.querySelector('a'))"
ROW_TEXTS = "[...document.querySelectorAll('table tbody tr')].map(row => row.textContent)"


def shown_image(kind: str) -> str:
    """How wide the image of this kind (svg+xml, png) is that the report shows, once loaded."""
    return ("(() => { const img = document.querySelector("
            f"'.justify-center img[src^=\"data:image/{kind}\"]');"
            " return img && img.complete && img.naturalWidth; })()")


SHOWN_IMAGE = shown_image("svg+xml")
SHOWN_PNG = shown_image("png")
SHOWN_SOURCE = "document.querySelector('.justify-center img').src"
SHOWN_FRAME = "!!document.querySelector('.justify-center iframe[src^=\"data:text/html\"]')"
LOADED_GIFS = ("(() => { const gifs = [...document.images].filter(img =>"
               " img.src.startsWith('data:image/gif'));"
               " return document.readyState === 'complete'"
               " && gifs.every(img => img.complete && img.naturalWidth > 0) && gifs.length;"
               " })()")
"""How many GIFs the frame shows, once it has been parsed whole and every GIF in it has loaded
(falsy until then)."""


def shown_svg(browser: Chromium) -> str:
    """The SVG source of the image the report shows."""
    source = browser.evaluate(SHOWN_SOURCE)
    header, _, payload = source.partition(",")
    return base64.b64decode(payload).decode() if header.endswith(";base64") else payload


def row_with(browser: Chromium, text: str) -> int:
    """The index of the result row whose text contains `text`."""
    rows = browser.evaluate(ROW_TEXTS)
    found = [index for index, row in enumerate(rows) if text in row]
    assert len(found) == 1, (text, rows)
    return found[0]


def show_rows(browser: Chromium, report: Path, *menu: str) -> int:
    """Open the report, follow the menu entries, return how many results the table lists."""
    browser.open(report.as_uri())
    for entry in menu:
        browser.click(entry)
    return browser.wait_for(RESULT_ROWS)


def view(browser: Chromium, row: int, shown: str) -> Any:
    """Click the view button of a result row and wait for `shown` to be true in the page."""
    browser.evaluate(f"{VIEW_BUTTONS}[{row}].click()")
    return browser.wait_for(shown)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_report_opens_in_chromium_with_samples_curves_and_scores(
    finished_run: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    snakemake(finished_run, "--report", str(report), "--configfile", "tiny.yaml")
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(report.as_uri())
        menu = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.textContent)")
        assert {"Samples", "Training curves", "Scores"} <= {text.strip() for text in menu}

        for subcategory, curves in (("VQ-VAE", 3), ("Transformer", 1)):
            assert show_rows(browser, report, "Training curves", subcategory) == curves
            for row in range(curves):
                assert view(browser, row, SHOWN_IMAGE) > 100, (subcategory, row)
        assert "held_out_bits_per_code" in shown_svg(browser)  # the held-out curve

        # TINY samples one test video twice: its sheet and the overview, 3 rows of its frames
        assert show_rows(browser, report, "Samples", "Contact sheets") == 2
        for label in ("overview of the first videos", "test"):
            width = view(browser, row_with(browser, label), SHOWN_PNG)
            assert width > SETTINGS["sample"]["frames"] * 64, label
            height = browser.evaluate("document.querySelector('.justify-center img').naturalHeight")
            assert height > 3 * 64, label
        assert show_rows(browser, report, "Samples", "GIFs") == 1
        view(browser, 0, SHOWN_FRAME)
        assert browser.in_frame(LOADED_GIFS) == 2  # two samples beside the real clip

        assert show_rows(browser, report, "Scores") == 2
        view(browser, row_with(browser, "PSNR and SSIM per predicted frame"), SHOWN_IMAGE)
        svg = shown_svg(browser)
        assert "copy last frame (baseline)" in svg and "VQ-VAE reconstruction (ceiling)" in svg
        view(browser, row_with(browser, "every score"), SHOWN_FRAME)
        cells = browser.in_frame(
            "[...document.querySelectorAll('td')].map(td => td.textContent)")
        row = cells.index("transformer.test_bits.bits_per_code")
        assert float(cells[row + 1]) > 0
        for key in ("fvd_copy_last_frame", "copy_last_frame_psnr_db", "copy_last_frame_ssim",
                    "per_step.copy_last_frame_psnr_db", "per_step.reconstruction_psnr_db"):
            assert key in cells, key
        assert float(cells[cells.index("fvd_copy_last_frame") + 1]) >= 0
    finally:
        browser.close()
