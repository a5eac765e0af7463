"""What `make test` installs for its own tests, shared by its steps (harness/browser.py,
harness/php.py, harness/xapi_client.py): an install step run quietly, Debian's packages through
apt-get when this user may run it, and how a step ends (what it found, or one line saying what to
run)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def run_step(command: list[str], cwd=None) -> bool:
    """Run an install step quietly (in `cwd`); on failure say so in one line (its own output is long)."""
    print("$ " + " ".join(command) + (f" (in {cwd})" if cwd else ""), file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, cwd=cwd,
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  failed: {exc}", file=sys.stderr)
        return False
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        print(f"  failed (exit {done.returncode}): {lines[0] if lines else 'no output'}", file=sys.stderr)
    return done.returncode == 0


def apt_prefix() -> list[str] | None:
    """How this user runs apt-get: directly as root, through sudo without a password, or not at all."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def apt_install(packages: tuple[str, ...], why: str) -> bool:
    """Install Debian's `packages` when this user may run apt-get; False when not or when it failed."""
    apt = apt_prefix()
    if apt is None:
        return False
    print(f"installing Debian's {' and '.join(packages)} {why}", file=sys.stderr)
    return run_step(apt + ["apt-get", "update", "-qq"]) and \
        run_step(apt + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])


def finish(found: object, advice: str, label: str) -> int:
    """A Makefile step's exit status: 0 saying what was found, else 1 with `advice` as the last line."""
    if not found:
        print(advice, file=sys.stderr)
        return 1
    print(f"{label}: {found}", file=sys.stderr)
    return 0
