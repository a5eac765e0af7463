"""The two ends of every benchmark's report: what it begins with (the date, the machine, the load
average) and how it ends (indented JSON on stdout, and in --json's file if given), with the line a
bench writes to stderr while it runs."""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from harness.measure import loadavg, machine


def header() -> dict:
    """{"date", "machine", "load_at_start"}: the first keys of a report, taken before anything runs."""
    return {"date": date.today().isoformat(), "machine": machine(), "load_at_start": loadavg()}


def teller(bench: str):
    """say(message): one progress line `bench.<name>: message` on stderr, flushed."""
    def say(message: str) -> None:
        print(f"{bench}: {message}", file=sys.stderr, flush=True)
    return say


def write_json(result: dict, path: Path | None, default=None) -> str:
    """The report as indented JSON, written to `path` (its folder made) when given; returns the text."""
    text = json.dumps(result, indent=2, default=default)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text


def emit(result: dict, path: Path | None, default=None) -> None:
    """The report on stdout, and in `path` when given."""
    print(write_json(result, path, default))
