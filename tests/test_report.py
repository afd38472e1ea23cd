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
from helpers import snakemake

from lvt.errors import InputError
from lvt.report import flatten, is_protocol, read_metrics, save_plot, scores_page, vqvae_plots

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
    metrics.write_text("step,loss\n5,0.5\n10,\n")
    with pytest.raises(InputError, match="metrics.csv: a missing or non-numeric"):
        read_metrics(metrics)
    metrics.write_text("step,loss,psnr,perplexity_0\n5,0.5,20,3\n")
    with pytest.raises(InputError, match="no column loss_reconstruction"):
        vqvae_plots(read_metrics(metrics), metrics)


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
SHOWN_IMAGE = ("(() => { const img = document.querySelector("
               "'.justify-center img[src^=\"data:image/svg+xml\"]');"
               " return img && img.complete && img.naturalWidth; })()")
SHOWN_FRAME = "!!document.querySelector('.justify-center iframe[src^=\"data:text/html\"]')"
LOADED_GIFS = ("(() => { const gifs = [...document.images].filter(img =>"
               " img.src.startsWith('data:image/gif'));"
               " return document.readyState === 'complete'"
               " && gifs.every(img => img.complete && img.naturalWidth > 0) && gifs.length;"
               " })()")
"""How many GIFs the frame shows, once it has been parsed whole and every GIF in it has loaded
(falsy until then)."""


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

        assert show_rows(browser, report, "Samples") == 1  # TINY samples one test video
        view(browser, 0, SHOWN_FRAME)
        assert browser.in_frame(LOADED_GIFS) == 2  # two samples beside the real clip

        assert show_rows(browser, report, "Scores") == 1
        view(browser, 0, SHOWN_FRAME)
        cells = browser.in_frame(
            "[...document.querySelectorAll('td')].map(td => td.textContent)")
        row = cells.index("transformer.test_bits.bits_per_code")
        assert float(cells[row + 1]) > 0
    finally:
        browser.close()
