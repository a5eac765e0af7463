"""Smoke tests of the real service processes: `make run` on the embedded default, and
`adaptrec serve` on configured servers. Each starts, answers /readyz, and stops cleanly on Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from app.config import PROJECT_ROOT
from cli.embedded import EmbeddedServers
from harness.service import free_port

pytestmark = pytest.mark.slow  # starts `adaptrec serve` processes


def wait_for(url: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the service exited early with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def ctrl_c(proc: subprocess.Popen) -> str:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, _ = proc.communicate(timeout=60)
    return out


def printed_curl(output: str, path_fragment: str) -> str:
    return next(line.strip() for line in output.splitlines()
                if line.strip().startswith("curl") and path_fragment in line)


def test_make_run_serves_the_demo_on_embedded_servers_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "ADAPTREC_HOME": str(tmp_path), "ADAPTREC_PORT": str(port)}
    for name in ("ADAPTREC_DATABASE_URL", "ADAPTREC_REDIS_URL", "ADAPTREC_API_KEYS"):
        env.pop(name, None)
    proc = subprocess.Popen(["make", "-s", "run"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", proc, timeout=240)
        assert ready["status"] == "ready"
        time.sleep(1)  # let the banner with the curl examples print
    finally:
        output = ctrl_c(proc)
    assert "Traceback" not in output, output
    assert f"adaptrec is serving on http://127.0.0.1:{port}" in output
    assert f"Dashboard: http://127.0.0.1:{port}/dashboard (sign in with the API key above)" in output
    # The printed curl works as printed (the service is stopped now, so start it again and run it).
    servers = EmbeddedServers(tmp_path / "var")
    assert not servers.status()["postgres_running"] and not servers.status()["redis_running"]
    assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()  # data kept for the next run

    proc = subprocess.Popen(["make", "-s", "run"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", proc, timeout=120)
        time.sleep(1)
        ask = _first_banner_curl(proc, "/v1/recommendations")
        post = _first_banner_curl(proc, "/v1/interactions")
        first = json.loads(subprocess.run(["bash", "-c", ask], capture_output=True, text=True, timeout=30).stdout)
        assert first["model"] is not None and all(0 < it["p"] < 1 for it in first["items"])
        assert json.loads(subprocess.run(["bash", "-c", post], capture_output=True, text=True, timeout=30).stdout)
        second = json.loads(subprocess.run(["bash", "-c", ask], capture_output=True, text=True, timeout=30).stdout)
        # one more attempt; the busiest demo learner's history is at the window's cap (the most recent
        # events), so the oldest attempt may leave as the new one enters
        assert second["history_rows"] in (first["history_rows"], first["history_rows"] + 1)
        assert [it["p"] for it in second["items"]] != [it["p"] for it in first["items"]]  # they moved
        # The printed dashboard URL and key: sign in and the pages show the demo
        key = (tmp_path / "var" / "api_key").read_text().strip()
        assert "demo.math" in dashboard_page(f"http://127.0.0.1:{port}", key, "/dashboard/models")
        assert "svg" in dashboard_page(f"http://127.0.0.1:{port}", key, "/dashboard")
    finally:
        output = ctrl_c(proc)
    assert "loading the demo" not in output  # the second run keeps the data
    assert not servers.status()["postgres_running"]


def dashboard_page(base: str, key: str, path: str) -> str:
    """Sign in to the dashboard with `key` as a browser would (form token, session cookie); `path`'s HTML."""
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(base + "/dashboard/login", timeout=30).read().decode()
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    opener.open(base + "/dashboard/login", urllib.parse.urlencode({"login_token": token, "api_key": key}).encode(),
                timeout=30)
    with opener.open(base + path, timeout=30) as answer:
        assert answer.geturl().endswith(path), answer.geturl()     # signed in: not sent back to the sign-in
        return answer.read().decode()


def _first_banner_curl(proc: subprocess.Popen, fragment: str) -> str:
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.strip().startswith("curl") and fragment in line:
            return line.strip()
    raise AssertionError("no curl example printed:\n" + "".join(lines))


def test_serve_uses_configured_servers_and_starts_none(db_url, redis_url, tmp_path):
    port = free_port()
    env = {**os.environ, "ADAPTREC_HOME": str(tmp_path), "ADAPTREC_PORT": str(port),
           "ADAPTREC_DATABASE_URL": db_url, "ADAPTREC_REDIS_URL": redis_url, "ADAPTREC_API_KEYS": "k1"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--workers", "1"], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", proc, timeout=60)
        assert ready["postgres"] == "ok" and ready["redis"] == "ok"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/users/nobody",
                                         headers={"Authorization": "Bearer k1"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 404
        err.value.close()
    finally:
        output = ctrl_c(proc)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "var").exists()  # no embedded server was started
