"""The deployment files say what operators rely on: every setting documented, the compose stack
non-root with health checks, restart policies, a graceful stop and the daily jobs."""
from __future__ import annotations

import re

import yaml

from app.config import PROJECT_ROOT

SETTING = re.compile(r"\bADAPTREC_[A-Z_]+\b")


def test_every_environment_variable_the_code_reads_is_documented_in_the_readme():
    read = set()
    for path in [p for package in ("app", "jobs", "cli") for p in (PROJECT_ROOT / package).rglob("*.py")]:
        read |= set(SETTING.findall(path.read_text()))
    read.discard("ADAPTREC_SETTINGS")  # Flask config key, not an environment variable
    table = (PROJECT_ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert read - set(SETTING.findall(table)) == set()


def test_compose_runs_the_api_non_root_with_health_check_restart_and_graceful_stop():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "api", "scheduler"} <= set(services)
    api = services["api"]
    assert api["user"] not in ("0", "root") and api["restart"] == "unless-stopped"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    grace = int(api["stop_grace_period"].rstrip("s"))
    assert grace > 20  # longer than gunicorn's graceful timeout, so in-flight requests finish
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"] and services[name]["restart"] == "unless-stopped"
        assert api["depends_on"][name]["condition"] == "service_healthy"
    for variable in api["environment"]:
        assert variable.startswith("ADAPTREC_")


def test_compose_scheduler_runs_the_daily_jobs_and_the_image_is_non_root():
    scheduler = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]["scheduler"]
    command = " ".join(scheduler["command"])
    assert "adaptrec train --all" in command and "adaptrec calibrate" in command and "sleep 86400" in command
    assert scheduler["healthcheck"]["disable"] is True and scheduler["restart"] == "unless-stopped"
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER adaptrec$", dockerfile, re.M) and "HEALTHCHECK" in dockerfile
