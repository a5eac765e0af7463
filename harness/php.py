"""PHP with curl, for the Totara client the slow tests run (harness/totara_client.php), found or
installed by `make test` itself, as the browser is (harness/browser.py).

`python -m harness.php` (the Makefile's `php` step, before the suite) makes sure one is there:
1. $ADAPTREC_TEST_PHP, else `php` on PATH, with the curl extension loaded: nothing to do;
2. apt-get, when this user may run it (root, or sudo without a password): Debian's php-cli and
   php-curl (what a Totara site's PHP has: the CLI and its curl extension);
and otherwise stops with one line that says what to run. The tests call `executable()` and so use
what this step found; they fail, never skip, when there is none.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.provision import apt_install, finish

CLIENT = Path(__file__).with_name("totara_client.php")
PACKAGES = ("php-cli", "php-curl")
ADVICE = ("the Totara client tests need PHP with curl: run `sudo apt-get install -y php-cli php-curl` "
          "(Debian/Ubuntu) or set ADAPTREC_TEST_PHP to a php binary with the curl extension, then `make test` again")


def _candidate() -> str | None:
    configured = os.environ.get("ADAPTREC_TEST_PHP")
    return configured if configured else shutil.which("php")


def problem(php: str | None) -> str | None:
    """None when `php` runs and has curl; else what is wrong, in a few words."""
    if not php:
        return "no php on PATH"
    try:
        done = subprocess.run([php, "-r", 'exit(function_exists("curl_init") ? 0 : 3);'], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{php} does not run: {exc}"
    if done.returncode == 3:
        return f"{php} has no curl extension (php-curl)"
    if done.returncode != 0:
        return f"{php} fails (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:200]}"
    return None


def executable() -> str | None:
    """The php to run the Totara client with (curl loaded), or None."""
    php = _candidate()
    return php if problem(php) is None else None


def ensure() -> str | None:
    """PHP with curl for the tests, installing Debian's when this user may; None when none could be had."""
    found = executable()
    if found:
        return found
    print(f"PHP for the Totara client tests: {problem(_candidate())}", file=sys.stderr)
    if apt_install(PACKAGES, "for the Totara client tests"):
        return executable()
    return None


def main() -> int:
    return finish(ensure(), ADVICE, "PHP for the Totara client tests")


if __name__ == "__main__":
    sys.exit(main())
