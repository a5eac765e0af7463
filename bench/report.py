"""The end of every benchmark: the report as indented JSON on stdout, and in --json's file if given."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, path: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
