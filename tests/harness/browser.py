"""Debian's headless Chromium (Playwright's own browser download does not work offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags verified on these machines (INFRA.md); add `--user-data-dir=<fresh dir>` per browser.
HEADLESS_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        if Path(c).exists():
            return c
    return shutil.which("chromium")


def headless_flags(user_data_dir: Path) -> list[str]:
    """The recommended flags plus a private profile dir."""
    return [*HEADLESS_FLAGS, f"--user-data-dir={user_data_dir}"]
