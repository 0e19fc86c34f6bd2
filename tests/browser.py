"""A real headless Chromium for page tests: Debian's ``chromium`` driven by Playwright.

``open_page(url)`` yields the Playwright page and a list of problems seen while it was open:
failed requests, requests that left the machine (anything but file:, data: and loopback), and
console errors. Tests assert that the list is empty. ``.ci/run`` installs Debian's chromium when
it is missing; without it these tests fail rather than skip, so a page never goes untested.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    return path


def _is_local(url: str) -> bool:
    parts = urlparse(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOCAL_HOSTS


@contextmanager
def open_page(url: str, width: int = 1280, height: int = 900) -> Iterator[tuple[object, list]]:
    """Open ``url`` in headless Chromium; yields (page, problems)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on(
                "request",
                lambda r: None if _is_local(r.url) else problems.append(f"network: {r.url}"),
            )
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(url, wait_until="load")
            yield page, problems
        finally:
            browser.close()


def visible_size(page, selector: str) -> list[tuple[float, float]]:
    """Rendered (width, height) of every element matching ``selector``."""
    return page.eval_on_selector_all(
        selector,
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })",
    )
