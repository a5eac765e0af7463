"""Totara's contract exercised by a PHP client, as a Totara site calls the service: PHP's curl
(Debian's php-cli and php-curl, provisioned by `make test` through harness/php.py), the request
signed as Totara signs it, a 1 s connect and 2 s total timeout, items read as integers
(harness/totara_client.php). The service runs as `adaptrec serve` does (gunicorn) on a scratch
database holding the three-tenant fixture export, tenant 5 (tenant 0's export without the
component columns: the component is only in the ids) and tenant 7 (items of no Totara component).

No PHP is a failure here, never a skip: `make test` installs it or says what to run."""
from __future__ import annotations

import json
import socket
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from app.totara import protocol as totara
from harness import php as php_harness
from tests.fixtures.totara_variants import export_without_any_component, export_without_component_columns

pytestmark = pytest.mark.slow  # imports, trains and starts gunicorn
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "totara_export"
KEY = "php-client-shared-secret"


@pytest.fixture(scope="module")
def php() -> str:
    found = php_harness.executable()
    assert found, f"{php_harness.problem(php_harness._candidate())}: {php_harness.ADVICE}"
    return found


@pytest.fixture(scope="module")
def service(servers, tmp_path_factory):
    """gunicorn over the fixture export (tenants 0, 1, 2), tenant 5 and tenant 7, trained: the base URL."""
    from app.infra.db import connect
    from harness.databases import scratch_database, scratch_redis_prefix
    from harness.service import running_service
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    tmp = tmp_path_factory.mktemp("php-client")
    with scratch_database(servers[0], "adaptrec_totaraphp") as url, \
            scratch_redis_prefix(servers[1], "totara-php") as prefix:
        with closing(connect(url, application_name="test-totara-php")) as conn:
            run_import(conn, "totara", [FIXTURE], progress=False)
            run_import(conn, "totara", [export_without_component_columns(tmp / "no-columns", "0", "5")],
                       progress=False)
            run_import(conn, "totara", [export_without_any_component(tmp / "no-component")], progress=False,
                       tenant="7")
        run_training(url, TrainConfig(tenant=None, threads=1), progress=False)
        with running_service(url, servers[1], "unused-api-key", tmp / "gunicorn.log", redis_prefix=prefix,
                             env={"ADAPTREC_TOTARA_KEY": KEY}) as running:
            yield running.base_url


def call(php: str, base: str, endpoint: str, *args: str, key: str = KEY, **params) -> tuple[int, dict]:
    """(exit code, the client's JSON line) of one call of harness/totara_client.php."""
    command = [php, str(php_harness.CLIENT), base, key, endpoint, *args, *(f"{k}={v}" for k, v in params.items())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def ids_of(component: str, tenant: str) -> set[int]:
    """The numbers of the fixture's items of `component` in `tenant`'s item_data."""
    ids = [totara.split_item_id(row.split(",")[0])
           for row in (FIXTURE / f"item_data_{tenant}.csv").read_text().splitlines()[1:]]
    return {number for kind, number in ids if kind == component}


def test_health_check_prints_every_tenant_and_names_the_one_without_totara_components(php, service):
    code, answer = call(php, service, "/health-check")
    assert code == 0 and answer["success"] and answer["http_code"] == 200, answer
    assert "tenants: 0, 1, 2, 5, 7" in answer["totara"]
    assert any(line.startswith("tenant 5: mode full; model trained") for line in answer["totara"]), answer
    assert len(answer["errors"]) == 1 and answer["errors"][0].startswith("tenant 7: none of its 12 items"), answer


def test_user_items_are_integer_ids_of_the_asked_type_within_totaras_timeouts(php, service):
    for tenant in ("0", "1"):
        code, answer = call(php, service, "/user-items", totara_user_id=101, item_type="engage_article",
                            tenant=tenant, n_items=5)
        assert code == 0 and answer["ids_were_integers"] is True, answer
        ids = [i for i, _ in answer["items"]]
        assert len(ids) == 5 and set(ids) <= ids_of("engage_article", tenant), answer
        assert answer["seconds"] < 2


def test_similar_items_are_of_the_items_own_type(php, service):
    code, answer = call(php, service, "/similar-items", totara_item_id="totara_playlist3", tenant=0, n_items=4)
    assert code == 0 and answer["ids_were_integers"] is True, answer
    ids = [i for i, _ in answer["items"]]
    assert len(ids) == 4 and 3 not in ids and set(ids) <= ids_of("totara_playlist", "0"), answer


@pytest.mark.parametrize("key, offset, fragment", [
    ("not-the-key", 0, "ml_service_key"),
    (KEY, -400, "behind the server clock"),
])
def test_a_bad_signature_is_refused(php, service, key, offset, fragment):
    code, answer = call(php, service, "/user-items", f"--clock-offset={offset}", key=key, totara_user_id=101,
                        item_type="engage_article", tenant=0)
    assert code == 1 and answer["http_code"] == 401 and answer["items"] is None, answer
    assert fragment in answer["message"]


def test_an_export_without_component_columns_answers_every_type(php, service):
    """Tenant 5 is tenant 0's export without the component columns: before issue 28 every answer
    here was an empty success."""
    for component in ("engage_article", "totara_playlist", "container_course", "container_workspace"):
        code, answer = call(php, service, "/user-items", totara_user_id=101, item_type=component, tenant=5,
                            n_items=3)
        assert code == 0 and len(answer["items"]) == 3, (component, answer)
        assert {i for i, _ in answer["items"]} <= ids_of(component, "0"), (component, answer)
    code, answer = call(php, service, "/similar-items", totara_item_id="engage_article1", tenant=5, n_items=3)
    assert code == 0 and len(answer["items"]) == 3 and {i for i, _ in answer["items"]} <= ids_of("engage_article", "0")


def test_a_tenant_without_totara_components_is_a_failure_not_an_empty_success(php, service):
    code, answer = call(php, service, "/user-items", totara_user_id=1, item_type="engage_article", tenant=7)
    assert code == 1 and answer["http_code"] == 409 and answer["success"] is False, answer
    assert "none of its 12 items has a Totara component" in answer["message"]


def test_the_client_gives_up_after_totaras_two_seconds(php):
    """The client keeps Totara's limits: a service that accepts and never answers costs the page 2 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        code, answer = call(php, f"http://127.0.0.1:{silent.getsockname()[1]}", "/health-check")
        elapsed = time.monotonic() - started
    assert code == 2 and answer["curl_error"] and "timed out" in answer["curl_error"].lower(), answer
    assert 1.9 <= elapsed < 5, elapsed
