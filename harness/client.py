"""One JSON request to the service with an API key, for setup and checks (not for load: that is
harness/load.py's open loop)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


def http_json(base: str, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """(status, parsed JSON body) of `method base+path`; an error status is returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")
