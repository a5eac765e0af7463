"""The xAPI clients the integration tier drives (tests/slow/test_xapi_client.py): @xapi/xapi and
Rustici's TinCanJS from npm, run under Node, as a learning platform sends statements.

`python -m harness.xapi_client` (the Makefile's `xapi-client` step, before the suite) installs them
with `npm ci` from the committed package-lock.json into harness/xapi_client/node_modules when they
are missing (or the lock changed), and otherwise stops with one line saying what to run. The test
calls `send(plan)`, which fails (never skips) when Node or the packages are missing.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness.provision import apt_install, finish, run_step

FOLDER = Path(__file__).resolve().parent / "xapi_client"
PACKAGES = ("@xapi/xapi", "tincanjs")
STAMP = FOLDER / "node_modules" / ".package-lock.json"   # npm writes it on every install
ADVICE = ("the xAPI client test needs Node 18+ and npm: install them (Debian: `sudo apt-get install nodejs npm`), "
          "then run `make xapi-client` (npm ci in harness/xapi_client)")


class ClientMissing(RuntimeError):
    pass


def node() -> str | None:
    return shutil.which("node")


def installed() -> bool:
    """The packages are in node_modules, installed from the lock as it is now."""
    lock = FOLDER / "package-lock.json"
    return (all((FOLDER / "node_modules" / p / "package.json").exists() for p in PACKAGES)
            and STAMP.exists() and STAMP.stat().st_mtime >= lock.stat().st_mtime)


def ensure() -> bool:
    """Node and npm (Debian's, through apt-get when this user may), then the clients from the lock
    when they are missing; True when they are there."""
    if node() is None or shutil.which("npm") is None:
        apt_install(("nodejs", "npm"), "for the xAPI client tests")
        if node() is None or shutil.which("npm") is None:
            return False
    if installed():
        return True
    return run_step(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FOLDER) and installed()


def send(plan: dict, timeout_s: float = 120) -> list[dict]:
    """Run harness/xapi_client/send.js with `plan` (see there); its per-step results. ClientMissing
    when Node or the packages are not there (the test fails with ADVICE, never skips)."""
    if node() is None or not installed():
        raise ClientMissing(ADVICE)
    done = subprocess.run([node(), str(FOLDER / "send.js")], input=json.dumps(plan), capture_output=True, text=True,
                          timeout=timeout_s, cwd=FOLDER)
    if done.returncode != 0:
        raise RuntimeError(f"send.js exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> int:
    return finish(FOLDER if ensure() else None, ADVICE,
                  f"xAPI clients for the integration tests ({', '.join(PACKAGES)}) in")


if __name__ == "__main__":
    sys.exit(main())
