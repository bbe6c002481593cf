"""A small Chrome DevTools Protocol client for a local page in headless Chromium.

It opens the page, sees every request it made, evaluates JavaScript in it and takes a full-page screenshot.

Used by the report's browser test, and as a command to screenshot a report:
`python -m tests.integration.browser REPORT.html OUT.png`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import connect
from websockets.sync.connection import Connection

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start, answer or load the page in time."""


def find_chromium() -> Path | None:
    """Debian's `/usr/bin/chromium`, else a `chromium` on PATH, else None."""
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


class Page:
    """One tab, driven over a flattened CDP session (None: the browser itself).

    `requests` lists every URL the page asked for.
    """

    def __init__(self, socket: Connection, session: str | None, timeout: float) -> None:
        self._socket = socket
        self._session = session
        self._timeout = timeout
        self._next_id = 0
        self.requests: list[str] = []

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command's result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        reply = self._receive(lambda m: m.get("id") == self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def navigate(self, path: Path) -> None:
        """Load the local file `path` and wait for its load event; `requests` starts afresh."""
        self.requests = []
        result = self.send("Page.navigate", {"url": path.resolve().as_uri()})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {path}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def wait_for(self, event: str) -> dict[str, Any]:
        return self._receive(lambda m: m.get("method") == event)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """The whole page as PNG, beyond the viewport, at the page's own content size."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        return base64.b64decode(shot["data"])

    def _receive(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self._socket.recv(timeout=left))
            except TimeoutError:
                break
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("sessionId") == self._session and wanted(message):
                return dict(message)
        raise BrowserError(f"no answer from Chromium within {self._timeout:.0f} s")


@contextmanager
def open_page(path: Path, *, width: int = 1200, height: int = 900, timeout: float = 20.0) -> Iterator[Page]:
    """A headless Chromium showing the local file `path` (loaded, network recorded), closed afterwards."""
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="synthgate-chromium-"))
    process = subprocess.Popen(
        [str(chromium), *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its helper processes share this group, so all of them can be stopped
    )
    try:
        endpoint = _browser_endpoint(profile, process, timeout)
        # No size cap (screenshots are megabytes) and no proxy from the environment: the browser is local.
        with connect(endpoint, max_size=None, open_timeout=timeout, proxy=None) as socket:
            page = _attach(socket, timeout)
            page.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            page.send("Emulation.setScrollbarsHidden", {"hidden": True})  # the page gets the full width
            page.send("Network.enable")
            page.send("Page.enable")
            page.navigate(path)
            yield page
    finally:
        _stop(process)
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(report: Path, out: Path | None = None, *, width: int = 1200) -> bytes:
    """A full-page PNG of `report`, also written to `out` when given."""
    with open_page(report, width=width) as page:
        png = page.screenshot()
    if out is not None:
        out.write_bytes(png)
    return png


def _browser_endpoint(profile: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    """The browser's websocket address, which Chromium writes to `DevToolsActivePort` once it listens."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserError(f"chromium exited with status {process.returncode} before listening")
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise BrowserError(f"chromium did not open its DevTools port within {timeout:.0f} s")


def _attach(socket: Connection, timeout: float) -> Page:
    """A new tab and a flattened session on it (commands carry its sessionId over the browser socket)."""
    browser = Page(socket, None, timeout)
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    return Page(socket, session, timeout)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the Chromium this module started: its process group, which holds its helper processes."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Full-page screenshot of an HTML report in headless Chromium.")
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args(argv)
    png = screenshot(args.report, args.out, width=args.width)
    sys.stdout.write(f"wrote {args.out} ({len(png):,} bytes)\n")


if __name__ == "__main__":
    main()
