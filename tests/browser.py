"""Debian's Chromium for the dashboard's browser test, driven by Playwright's Python client.

The browser comes from apt (`chromium`), never from a Playwright download: `ensure_chromium()`
installs it when /usr/bin/chromium is missing and fails the test, saying why, when it cannot.
`launch()` starts it headless with a fresh profile that is removed afterwards. `screenshots_dir()`
is where the test leaves its pictures (docs/screenshots/, or $SLUICE_SCREENSHOTS_DIR).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # the test may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
APT_TIMEOUT_S = 600


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    """apt-get ARGS, through `sudo -n` when not root (CI runners); never prompts."""
    command = ["apt-get", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(command, 1, "", str(error))


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed with apt when missing (`apt-get update` only if the first
    install fails, since the package lists are usually fresh enough). Fails the test when it
    cannot be installed: a browser test that silently skips would prove nothing."""
    if CHROMIUM.exists():
        return CHROMIUM
    result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0 or not CHROMIUM.exists():
        _apt("update")
        result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(
            f"the browser test needs Debian's Chromium at {CHROMIUM}; `apt-get install -y chromium` "
            f"failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}",
            pytrace=False,
        )
    return CHROMIUM


@contextmanager
def launch(playwright: Playwright) -> Iterator[BrowserContext]:
    """Chromium from apt, headless, with a fresh user data dir (removed on the way out) and
    downloads accepted; yields its one browser context."""
    executable = ensure_chromium()
    profile = Path(tempfile.mkdtemp(prefix="sluice-chromium-"))
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(executable),
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport=VIEWPORT,
        accept_downloads=True,
        timeout=60_000,
    )
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def screenshots_dir() -> Path:
    """Where screenshots go: $SLUICE_SCREENSHOTS_DIR, else docs/screenshots/ (committed)."""
    folder = Path(os.environ.get("SLUICE_SCREENSHOTS_DIR") or SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
