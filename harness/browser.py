"""The browser the dashboard's browser tests drive, found or installed by `make test` itself.

`python -m harness.browser` (the Makefile's `browser` step, before the suite) makes sure one is
there, in this order:
1. Debian's chromium at /usr/bin/chromium (or $ADAPTREC_TEST_CHROMIUM): nothing to do;
2. Playwright's own chromium, already downloaded into its cache: nothing to do;
3. apt-get, when this user may run it (root, or sudo without a password): Debian's chromium;
4. `playwright install chromium`, where Playwright's download host answers;
and otherwise stops with one line that says what to run. The tests call `executable()` and so
use what this step found; they fail, never skip, when there is none.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.provision import apt_install, finish, run_step

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
ADVICE = ("the dashboard's browser tests need chromium: run `sudo apt-get install -y chromium` "
          "(Debian/Ubuntu) or `.venv/bin/playwright install chromium`, then `make test` again")


def _configured() -> Path:
    return Path(os.environ.get("ADAPTREC_TEST_CHROMIUM", DEBIAN_CHROMIUM))


def _playwright_chromium() -> Path | None:
    """Playwright's own chromium when it has been downloaded (its path exists), else None."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as p:
            path = Path(p.chromium.executable_path)
    except Exception:  # Playwright's driver failing to start means: no browser from it
        return None
    return path if path.exists() else None


def executable() -> Path | None:
    """The browser to launch: Debian's (or the configured one) first, then Playwright's own."""
    configured = _configured()
    if configured.exists():
        return configured
    return _playwright_chromium()


def ensure() -> Path | None:
    """A browser for the tests, installing one when it can; None when none could be had."""
    found = executable()
    if found:
        return found
    if apt_install(("chromium",), "for the dashboard's browser tests"):
        found = executable()
        if found:
            return found
    print("trying Playwright's own chromium", file=sys.stderr)
    if run_step([sys.executable, "-m", "playwright", "install", "chromium"]):
        return executable()
    return None


def main() -> int:
    return finish(ensure(), ADVICE, "browser for the dashboard's tests")


if __name__ == "__main__":
    sys.exit(main())
