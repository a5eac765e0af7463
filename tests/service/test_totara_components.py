"""Issue 28: a Totara export whose item_data has no component columns. Totara's ids carry the
component (`engage_article12`), so the import takes it from the id and says so; a tenant whose items
have no Totara component at all is reported by the import and by /health-check, and /user-items
refuses it instead of answering an empty success. Real Postgres and Redis, the app in-process,
the tenant trained by the real job (a few seconds: 40 users, 30 items)."""
from __future__ import annotations

import dataclasses
import time
from contextlib import closing

import psycopg2
import pytest

from app.totara import protocol as totara
from tests.fixtures.totara_variants import export_without_any_component, export_without_component_columns

KEY = "components-secret"


def signed() -> dict:
    stamp = str(int(time.time()))
    return {"X-Totara-Time": stamp, "X-Totara-Ml-Key": totara.sign(stamp, KEY)}


@pytest.fixture(scope="module")
def trained(servers, tmp_path_factory):
    """A scratch database holding tenant 0 of the fixture imported without component columns and
    trained (train --all), and a second tenant `7` whose items carry no Totara component: (url, reports)."""
    from app.infra.db import connect
    from harness.databases import scratch_database
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    with scratch_database(servers[0], "adaptrec_totcomp") as url:
        folder = export_without_component_columns(tmp_path_factory.mktemp("no-columns"))
        no_component = export_without_any_component(tmp_path_factory.mktemp("no-component"))
        with closing(connect(url, application_name="test-totara-components")) as conn:
            reports = run_import(conn, "totara", [folder], progress=False)
            reports += run_import(conn, "totara", [no_component], progress=False, tenant="7")
        run_training(url, TrainConfig(tenant=None, threads=1), progress=False)
        yield url, reports


@pytest.fixture
def totara_client(trained, settings):
    from app.api.factory import close as close_app
    from app.api.factory import create_app

    application = create_app(dataclasses.replace(settings, database_url=trained[0], totara_key=KEY))
    application.config["TESTING"] = True
    yield application.test_client()
    close_app(application)


def test_items_take_their_component_from_the_id_when_item_data_has_no_component_columns(trained):
    with closing(psycopg2.connect(trained[0])) as conn, conn.cursor() as cur:
        cur.execute("SELECT item_id, kind FROM items WHERE tenant = '0'")
        kinds = dict(cur.fetchall())
    assert len(kinds) == 30
    assert all(kind == totara.split_item_id(item)[0] for item, kind in kinds.items()), kinds
    assert kinds["container_course2"] == "container_course" and kinds["totara_playlist8"] == "totara_playlist"


def test_the_import_says_how_many_items_took_their_component_from_the_id(trained):
    report = trained[1][0]
    assert "30 items took their Totara component from the id" in report.summary()
    assert not report.warnings


def test_user_items_answers_a_tenant_imported_without_component_columns(totara_client):
    for item_type in ("engage_article", "totara_playlist", "container_course"):
        answer = totara_client.get(f"/user-items?totara_user_id=101&item_type={item_type}&tenant=0&n_items=3",
                                   headers=signed())
        assert answer.status_code == 200 and answer.json["success"] is True, answer.json
        assert len(answer.json["items"]) == 3, (item_type, answer.json)


def test_a_tenant_without_totara_components_is_a_warning_of_the_import(trained):
    report = trained[1][1]
    assert report.warnings and "none of its 12 items has a Totara component" in report.warnings[0]
    assert "lesson1" in report.warnings[0] and "engage_article" in report.warnings[0]
    assert "warning: " + report.warnings[0] in report.summary()


def test_user_items_refuses_a_tenant_without_totara_components_instead_of_an_empty_success(totara_client):
    answer = totara_client.get("/user-items?totara_user_id=1&item_type=engage_article&tenant=7&n_items=3",
                               headers=signed())
    assert answer.status_code == 409, answer.json
    assert answer.json["success"] is False and "none of its 12 items has a Totara component" in answer.json["message"]


def test_health_check_names_the_tenant_without_totara_components(totara_client):
    body = totara_client.get("/health-check", headers=signed()).json
    assert {"0", "7"} <= set(body["totara"]["tenants"].split(", ")) and "model trained" in body["totara"]["tenant 0"]
    assert any(e.startswith("tenant 7:") and "none of its 12 items has a Totara component" in e
               for e in body["errors"]), body["errors"]
    assert not [e for e in body["errors"] if e.startswith("tenant 0:")], body["errors"]


@pytest.fixture
def legacy_files(trained, settings, tmp_path):
    """`adaptrec export --format totara` of tenant 0 (n 3): the i2u and i2i rows, headers dropped."""
    from app.infra.cache import Cache
    from jobs.export_totara import export_totara

    cache = Cache(settings.redis_url, settings.redis_prefix)
    with closing(psycopg2.connect(trained[0])) as conn:
        export_totara(conn, cache, tmp_path, ["0"], n=3)
    cache.close()
    return {name: [line.split(",") for line in (tmp_path / f"{name}_0.csv").read_text().splitlines()[1:]]
            for name in ("i2u", "i2i")}


def test_i2i_lists_items_of_the_same_type_as_similar_items_answers(legacy_files, totara_client):
    i2i = legacy_files["i2i"]
    assert {row[0] for row in i2i} >= {"engage_article1", "totara_playlist8", "container_course2"}
    assert all(totara.split_item_id(a)[0] == totara.split_item_id(b)[0] for a, b, _ in i2i), i2i
    for target in ("engage_article1", "totara_playlist3", "container_workspace5"):
        answer = totara_client.get(f"/similar-items?totara_item_id={target}&tenant=0&n_items=3", headers=signed())
        component = totara.split_item_id(target)[0]
        assert [f"{component}{number}" for number, _ in answer.json["items"]] == [b for a, b, _ in i2i if a == target]


def test_i2u_covers_the_users_user_items_answers_those_without_interactions_too(legacy_files, trained):
    with closing(psycopg2.connect(trained[0])) as conn, conn.cursor() as cur:
        cur.execute("SELECT user_id FROM users WHERE tenant = '0'")
        users = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT DISTINCT user_id FROM interactions WHERE tenant = '0'")
        with_interactions = {r[0] for r in cur.fetchall()}
    assert users - with_interactions == {"140"}   # the fixture's user with metadata and no interactions
    per_user = {}
    for user, item, _ in legacy_files["i2u"]:
        per_user.setdefault(user, []).append(item)
    assert set(per_user) == users and all(len(items) == 3 for items in per_user.values())


def test_importing_the_export_again_fixes_a_tenant_imported_under_kind_content(trained, totara_client, tmp_path):
    """A tenant imported before the component came from the id (every item of kind `content`, as a
    `type` column of `content` files them) is answered once the same export is imported again."""
    from app.infra.db import connect
    from jobs.importers import run_import

    folder = export_without_component_columns(tmp_path / "again", "0", "8")
    item_data = folder / "item_data_8.csv"
    fixed = item_data.read_text()
    lines = fixed.splitlines()
    item_data.write_text("\n".join([lines[0] + ",type"] + [line + ",content" for line in lines[1:]]) + "\n")
    ask = "/user-items?totara_user_id=101&item_type=engage_article&tenant=8&n_items=3"
    with closing(connect(trained[0], application_name="test-totara-components")) as conn:
        old, = run_import(conn, "totara", [folder], progress=False)
        assert old.warnings and totara_client.get(ask, headers=signed()).status_code == 409
        item_data.write_text(fixed)
        again, = run_import(conn, "totara", [folder], progress=False)
    assert again.created["items"] == 30 and not again.warnings
    answer = totara_client.get(ask, headers=signed())
    assert answer.status_code == 200 and len(answer.json["items"]) == 3, answer.json
