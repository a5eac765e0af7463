"""harness/php.py: PHP for the Totara client tests is found when it runs with curl, and otherwise
`make test` stops with one line saying what to run (no apt here: these tests never install)."""
from __future__ import annotations

import stat

from harness import php, provision


def fake_php(tmp_path, exit_code: int):
    path = tmp_path / "php"
    path.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_php_without_curl_is_not_used_and_the_problem_names_php_curl(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTREC_TEST_PHP", fake_php(tmp_path, 3))
    assert php.executable() is None
    assert "no curl extension (php-curl)" in php.problem(php._candidate())


def test_a_php_with_curl_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTREC_TEST_PHP", fake_php(tmp_path, 0))
    assert php.executable() == str(tmp_path / "php")


def test_without_php_nor_apt_the_step_fails_with_one_line_saying_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_TEST_PHP", str(tmp_path / "missing-php"))
    monkeypatch.setattr(provision, "apt_prefix", lambda: None)   # a user who may not run apt-get
    assert php.main() == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == php.ADVICE and "apt-get install -y php-cli php-curl" in last
