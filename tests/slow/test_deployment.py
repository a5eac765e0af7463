"""A deployment's install: the wheel a deployment would install carries its SQL and migrations. (The
deployment files themselves: tests/unit/test_deployment.py.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from app.config import PROJECT_ROOT

INSTALLED_CHECK = """
import sys
from pathlib import Path
import app.config, app.infra.migrations, app.infra.queries, cli.main
target = Path(sys.argv[1]).resolve()
assert app.config.PROJECT_ROOT == target, app.config.PROJECT_ROOT
assert app.config.default_home() == Path.cwd()  # var/ never in site-packages
print(len(app.infra.queries.all_queries()), len(app.infra.migrations.discover()))
"""


def test_a_non_editable_install_carries_its_sql_and_migrations(tmp_path):
    # The wheel a deployment would install, unpacked as site-packages would hold it, imported from
    # elsewhere: the named queries and migrations must come with it. Built from a copy of the
    # sources, so the build leaves nothing in the checkout.
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache", "out", "node_modules"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    *map(str, (tmp_path / "wheel").glob("*.whl"))], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", INSTALLED_CHECK, str(target)], cwd=elsewhere, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(target)})
    assert done.returncode == 0, done.stderr
    from app.infra import migrations, queries

    assert done.stdout.split() == [str(len(queries.all_queries())), str(len(migrations.discover()))]
