"""Every environment variable is read and checked in app/config.py: a bad value is refused with a
message that names the variable and what to give; unset or empty, the default holds."""
from __future__ import annotations

import ast
import importlib
import os
from dataclasses import replace

import pytest

from app import config
from app.config import PROJECT_ROOT, ConfigError, Settings
from jobs.train import TrainConfig
from jobs.training.job import FASTEST_THREADS, default_threads

# (variable, a value it refuses, what the message asks for)
BAD_SETTINGS = [
    ("ADAPTREC_DATABASE_URL", "mysql://db/x", "postgresql:// or postgres:// URL"),
    ("ADAPTREC_REDIS_URL", "cache:6379", "redis:// or rediss:// or unix:// URL"),
    ("ADAPTREC_PORT", "70000", "whole number from 1 to 65535"),
    ("ADAPTREC_PORT", "http", "whole number from 1 to 65535"),
    ("ADAPTREC_WORKERS", "0", "whole number of at least 1"),
    ("ADAPTREC_SERVER", "uwsgi", "one of gunicorn, granian"),
    ("ADAPTREC_THREADS", "two", "whole number of at least 1"),
    ("ADAPTREC_KEEPALIVE_S", "-1", "whole number of at least 0"),
    ("ADAPTREC_GRACEFUL_TIMEOUT_S", "20s", "whole number of at least 0"),
    ("ADAPTREC_DB_POOL_MAX", "0", "whole number of at least 1"),
    ("ADAPTREC_DB_CONNECT_TIMEOUT", "1.5", "whole number of at least 1"),
    ("ADAPTREC_STATEMENT_TIMEOUT_MS", "-5", "whole number of at least 0"),
    ("ADAPTREC_MIGRATION_LOCK_TIMEOUT_MS", "0", "whole number of at least 1"),
    ("ADAPTREC_MAX_BODY_BYTES", "100", "whole number of at least 1024"),
    ("ADAPTREC_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
    ("ADAPTREC_LOG_FORMAT", "xml", "one of json, text"),
    ("ADAPTREC_RATE_LIMIT_PER_S", "many", "whole number of at least 0"),
    ("ADAPTREC_KEY_CACHE_S", "-1", "whole number of at least 0"),
    ("ADAPTREC_TOTARA_SKEW_S", "0", "whole number of at least 1"),
    ("ADAPTREC_TOTARA_MODE", "deep", "one of mf, partial, full"),
    ("ADAPTREC_DASHBOARD_STALE_HOURS", "0", "whole number of at least 1"),
    ("ADAPTREC_METRICS_ROLLUP_S", "-60", "whole number of at least 0"),
]
BAD_TRAINING = [
    ("ADAPTREC_TRAIN_MODE", "deep", "one of mf, partial, full"),
    ("ADAPTREC_TRAIN_MIN_ITEMS", "0", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_MIN_INTERACTIONS", "lots", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_MIN_ENGAGED_ITEMS", "0", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_MAX_ATTEMPTS", "-1", "whole number of at least 0 (0: no sample, every learner)"),
    ("ADAPTREC_TRAIN_KEEP_VERSIONS", "3.5", "whole number of at least 0"),
    ("ADAPTREC_TRAIN_MARGIN", "2%", "number from 0 to 1"),
    ("ADAPTREC_TRAIN_MARGIN", "nan", "number from 0 to 1"),
    ("ADAPTREC_TRAIN_MARGIN", "-0.1", "number from 0 to 1"),
    ("ADAPTREC_TRAIN_MAX_TRIALS", "0", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_THREADS", "x", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_MAX_EVAL_USERS", "0", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_EASE_NEIGHBOURS", "0", "whole number of at least 1"),
    ("ADAPTREC_TRAIN_PREFER_PARENT", "maybe", "1 or 0"),
    ("ADAPTREC_TRAIN_WORKERS", "x", "whole number of at least 1"),
    ("ADAPTREC_DASK_SCHEDULER", "scheduler", "an address such as tcp://10.0.0.5:8786"),
    ("ADAPTREC_DASK_SCHEDULER", "http://10.0.0.5:8786", "an address such as tcp://10.0.0.5:8786"),
]
BOTH_SERVERS = {"ADAPTREC_DATABASE_URL": "postgresql://db/x", "ADAPTREC_REDIS_URL": "redis://cache:6379/0"}


@pytest.mark.parametrize("name, raw, wanted", BAD_SETTINGS, ids=lambda v: str(v))
def test_a_bad_service_setting_names_the_variable_and_what_to_give(name, raw, wanted):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BOTH_SERVERS, name: raw})
    assert str(refused.value).startswith(f"{name} must be") and wanted in str(refused.value)


@pytest.mark.parametrize("name, raw, wanted", BAD_TRAINING, ids=lambda v: str(v))
def test_a_bad_training_setting_names_the_variable_and_what_to_give(name, raw, wanted):
    with pytest.raises(ConfigError) as refused:
        TrainConfig.from_env({name: raw})
    message = str(refused.value)
    assert message.startswith(f"{name} must be") and wanted in message
    if name != "ADAPTREC_DASK_SCHEDULER" or "://" not in raw:
        assert repr(raw) in message   # says what it got


@pytest.mark.parametrize("raw", ["x", "-1", "1.5"])
def test_a_bad_log_retention_says_what_to_give(raw):
    with pytest.raises(ConfigError, match=r"ADAPTREC_LOG_RETENTION_DAYS must be a whole number of at least 0 "
                                          r"\(days; 0 keeps the whole recommendation log\)"):
        config.log_retention_days({"ADAPTREC_LOG_RETENTION_DAYS": raw})


def test_a_server_url_is_refused_without_repeating_its_password():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BOTH_SERVERS, "ADAPTREC_DATABASE_URL": "postgresq://app:s3cret@db/x"})
    assert "ADAPTREC_DATABASE_URL" in str(refused.value) and "s3cret" not in str(refused.value)


def test_unset_or_empty_variables_keep_the_defaults():
    defaults = Settings()
    for env in ({}, dict.fromkeys(("ADAPTREC_PORT", "ADAPTREC_THREADS", "ADAPTREC_LOG_LEVEL"), "")):
        read = Settings.from_env(env)
        assert read.home == PROJECT_ROOT.resolve()
        assert replace(read, home=defaults.home, log_format=defaults.log_format) == defaults
    assert config.train_settings({}) == {} and TrainConfig.from_env({}) == TrainConfig()
    assert TrainConfig.from_env({"ADAPTREC_TRAIN_WORKERS": " "}) == TrainConfig()
    assert config.log_retention_days({}) == 400
    assert config.multiprocess_metrics_dir({}) is None and config.kill_worker_in_unit({}) is None


def test_good_values_are_read_as_their_types():
    read = Settings.from_env({**BOTH_SERVERS, "ADAPTREC_PORT": "65535", "ADAPTREC_THREADS": "4",
                              "ADAPTREC_KEEPALIVE_S": "0", "ADAPTREC_GRACEFUL_TIMEOUT_S": "5",
                              "ADAPTREC_LOG_LEVEL": "debug", "ADAPTREC_TOTARA_MODE": "MF",
                              "ADAPTREC_SERVER": "Granian"})
    assert (read.port, read.threads, read.keepalive_s, read.graceful_timeout_s) == (65535, 4, 0, 5)
    assert (read.log_level, read.totara_mode, read.database_url) == ("DEBUG", "mf", "postgresql://db/x")
    assert read.server == "granian" and Settings.from_env({}).server == "gunicorn"
    job = TrainConfig.from_env({"ADAPTREC_TRAIN_MODE": "full", "ADAPTREC_TRAIN_MARGIN": "0.05",
                                "ADAPTREC_TRAIN_PREFER_PARENT": "0", "ADAPTREC_TRAIN_MAX_ATTEMPTS": "0",
                                "ADAPTREC_TRAIN_KEEP_VERSIONS": "0", "ADAPTREC_TRAIN_WORKERS": "3",
                                "ADAPTREC_DASK_SCHEDULER": "tcp://10.0.0.5:8786"}, workers=2)
    assert (job.mode, job.margin, job.prefer_parent, job.max_attempts, job.keep_versions) == ("full", 0.05, False,
                                                                                            0, 0)
    assert job.workers == 2 and job.dask_scheduler == "tcp://10.0.0.5:8786"   # an override beats the variable
    assert TrainConfig.from_env({"ADAPTREC_TRAIN_PREFER_PARENT": "yes"}).prefer_parent is True
    assert TrainConfig.from_env({"ADAPTREC_DASK_SCHEDULER": "10.0.0.5:8786"}).dask_scheduler == "10.0.0.5:8786"
    assert config.log_retention_days({"ADAPTREC_LOG_RETENTION_DAYS": "0"}) == 0


def test_gunicorn_runs_with_the_checked_settings(monkeypatch):
    import cli.gunicorn_conf

    monkeypatch.setenv("ADAPTREC_THREADS", "3")
    monkeypatch.setenv("ADAPTREC_KEEPALIVE_S", "30")
    monkeypatch.setenv("ADAPTREC_GRACEFUL_TIMEOUT_S", "7")
    conf = importlib.reload(cli.gunicorn_conf)
    assert (conf.threads, conf.keepalive, conf.graceful_timeout) == (3, 30, 7)
    monkeypatch.setenv("ADAPTREC_THREADS", "several")
    with pytest.raises(ConfigError, match="ADAPTREC_THREADS must be a whole number of at least 1"):
        importlib.reload(cli.gunicorn_conf)
    monkeypatch.undo()
    importlib.reload(cli.gunicorn_conf)   # as the other tests expect it


def test_the_command_refuses_a_bad_training_setting_in_one_line(monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("ADAPTREC_TRAIN_WORKERS", "x")
    assert main(["train", "--all", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == "adaptrec: ADAPTREC_TRAIN_WORKERS must be a whole number of at least 1, got 'x'\n"


def environment_reads(path) -> list[int]:
    """Lines of `path` that use os.environ or os.getenv to read the environment. Passing the whole
    environment on to a child process (dict(os.environ), {**os.environ}) or setting a variable is
    not reading."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            continue
        parent = parents[node]
        setting = isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store)
        copied = (isinstance(parent, ast.Call) and getattr(parent.func, "id", None) == "dict"
                  and parent.args == [node]) or (isinstance(parent, ast.Dict) and None in parent.keys)
        if node.attr == "getenv" or not (setting or copied):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_app_config_reads_the_environment():
    config_py = PROJECT_ROOT / "app" / "config.py"
    reads = {f"{path.relative_to(PROJECT_ROOT)}:{line}"
             for package in ("app", "cli", "jobs") for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
             if path != config_py for line in environment_reads(path)}
    assert reads == set()


def test_the_reads_check_sees_a_read(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import os\na = os.environ.get('X')\nb = os.getenv('Y')\nc = os.environ['Z']\n"
                      "env = os.environ if True else {}\nos.environ['W'] = '1'\nd = dict(os.environ)\n"
                      "e = {**os.environ, 'V': '1'}\n")
    assert environment_reads(sneaky) == [2, 3, 4, 5]


def test_training_threads_default_to_the_cores_divided_among_the_workers_unless_given():
    # the fastest count in one process (measured: 1), within each worker's share of the cores
    assert [default_threads(workers, cores=8) for workers in (1, 2, 8, 16)] == [1, 1, 1, 1]
    assert [default_threads(workers, cores=8, fastest=4) for workers in (1, 2, 3, 8, 16)] == [4, 4, 2, 1, 1]
    assert default_threads(1, cores=2) == 1 and default_threads(2, cores=2) == 1
    assert default_threads(4, dask=True, cores=64, fastest=4) == 1   # a Dask worker's cores are not this machine's
    cores = len(os.sched_getaffinity(0))
    assert TrainConfig.from_env({}).unit_threads == min(FASTEST_THREADS, cores)
    assert TrainConfig.from_env({}, workers=2).unit_threads == max(1, min(FASTEST_THREADS, cores // 2))
    assert TrainConfig.from_env({"ADAPTREC_TRAIN_THREADS": "3"}, workers=2).unit_threads == 3   # as told
    assert TrainConfig.from_env({"ADAPTREC_TRAIN_THREADS": "3"}, threads=1).unit_threads == 1   # --threads
