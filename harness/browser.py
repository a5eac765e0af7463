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
import shutil
import subprocess
import sys
from pathlib import Path

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


def _run(command: list[str]) -> bool:
    """Run an install step quietly; on failure say so in one line (its own output is long)."""
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  failed: {exc}", file=sys.stderr)
        return False
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        print(f"  failed (exit {done.returncode}): {lines[0] if lines else 'no output'}", file=sys.stderr)
    return done.returncode == 0


def _apt_prefix() -> list[str] | None:
    """How this user runs apt-get: directly as root, through sudo without a password, or not at all."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def ensure() -> Path | None:
    """A browser for the tests, installing one when it can; None when none could be had."""
    found = executable()
    if found:
        return found
    apt = _apt_prefix()
    if apt is not None:
        print("installing Debian's chromium for the dashboard's browser tests", file=sys.stderr)
        if _run(apt + ["apt-get", "update", "-qq"]) and \
                _run(apt + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
            found = executable()
            if found:
                return found
    print("trying Playwright's own chromium", file=sys.stderr)
    if _run([sys.executable, "-m", "playwright", "install", "chromium"]):
        return executable()
    return None


def main() -> int:
    found = ensure()
    if found is None:
        print(ADVICE, file=sys.stderr)
        return 1
    print(f"browser for the dashboard's tests: {found}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
