"""Headless Debian Chromium for the browser tests: how to launch it, and a page visit that
records every console error and network request."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def launch_browser() -> Iterator[Any]:
    """Chromium through Playwright (a missing browser skips, or fails where ``CI`` is set)."""
    if not Path(CHROMIUM).exists():
        # CI installs it (.ci/run): there a missing browser is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run should have installed Debian chromium")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A page opened from disk, with every console error and network request recorded."""

    def __init__(self, browser: Any, url: str, scheme: str = "light") -> None:
        self.context = browser.new_context(
            color_scheme=scheme, viewport={"width": 1280, "height": 900}
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def _request(self, request: Any) -> None:
        if not request.url.startswith("file://"):
            self.requests.append(request.url)

    def charts_drawn(self) -> int:
        self.page.wait_for_function(
            "[...document.querySelectorAll('.chart')].every(c => c.dataset.rendered === 'true')",
            timeout=15_000,
        )
        return int(
            self.page.evaluate(
                "[...document.querySelectorAll('.chart svg')].filter(s => s.querySelector('.mark-rect path, .mark-line path, .mark-rect, .mark-line')).length"
            )
        )

    def close(self) -> None:
        self.context.close()


def chromium() -> Iterator[Any]:
    """A launched Chromium for a module-scoped fixture (``yield from chromium()``)."""
    with launch_browser() as b:
        yield b
