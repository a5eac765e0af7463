"""`adaptrec calibrate` and the variant_outcomes view, on hand-made logs and attempts in a real Postgres."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from app.infra import queries as q
from cli.main import main
from jobs import calibrate

T0 = datetime(2026, 11, 23, tzinfo=UTC)       # the window [T0, T0 + 1 day)
T1 = T0 + timedelta(days=1)
H = timedelta(hours=1)
M = timedelta(minutes=1)
_events = itertools.count(1)


def setup(conn, users=("u1", "u2"), items=("q1", "q2", "q3", "q4", "q5", "q6")) -> dict:
    """A unit with items, users, a practice and an engagement model: {'practice': id, 'engagement': id}."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO units (unit_id, name) VALUES ('alg', 'Algebra')")
        cur.executemany("INSERT INTO items (item_id) VALUES (%s)", [(i,) for i in items])
        cur.executemany("INSERT INTO users (user_id) VALUES (%s)", [(u,) for u in users])
        ids = {}
        for objective in ("practice", "engagement"):
            cur.execute("INSERT INTO models (unit_id, objective, mode, status) VALUES ('alg', %s, 'mf', 'active') "
                        "RETURNING model_id", (objective,))
            ids[objective] = cur.fetchone()[0]
    conn.commit()
    return ids


def log(conn, user, at, items, scores, model_id, strategy="target", experiment=None, variant=None):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO recommendation_log (request_id, user_id, units, experiment, variant, strategy, "
                    "model_id, item_ids, scores, created_at) VALUES ('r', %s, '{alg}', %s, %s, %s, %s, %s, %s, %s)",
                    (user, experiment, variant, strategy, model_id, list(items), list(scores), at))
    conn.commit()


def attempt(conn, user, item, at, outcome, kind="attempt"):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO interactions (event_id, user_id, item_id, kind, outcome, occurred_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)", (f"e{next(_events)}", user, item, kind, outcome, at))
    conn.commit()


def outcomes(conn, start=T0, end=T1):
    rows = q.fetch_all(conn, "calibration_outcomes", tenant="default", window_start=start, window_end=end,
                       horizon_hours=calibrate.HORIZON_HOURS)
    conn.rollback()
    return sorted((r["model_id"], r["variant"], round(r["p"], 4), r["outcome"]) for r in rows)


def reports(conn, start=T0, end=T1):
    rows = q.fetch_all(conn, "calibration_reports_for_window", tenant="default", window_start=start, window_end=end)
    conn.rollback()
    return rows


# ---- the join -----------------------------------------------------------------------------
def test_each_following_attempt_is_counted_once_and_owned_by_the_latest_answer(conn):
    m = setup(conn)
    p, e = m["practice"], m["engagement"]
    attempt(conn, "u1", "q1", T0 + 0.5 * H, 1)             # before any answer: ignored
    log(conn, "u1", T0 + 1 * H, ["q1", "q2"], [0.8, 0.3], p)
    attempt(conn, "u1", "q3", T0 + 1.5 * H, 1)             # an item not recommended: ignored
    log(conn, "u1", T0 + 2 * H, ["q1"], [0.6], p)          # q1 again before it is attempted
    attempt(conn, "u1", "q1", T0 + 3 * H, 1)               # owned by the 2h answer (p 0.6), not the 1h one
    attempt(conn, "u1", "q1", T0 + 4 * H, 0)               # a second attempt: not counted
    attempt(conn, "u1", "q2", T0 + 5 * H, 0)               # first attempt after the 1h answer (p 0.3)
    attempt(conn, "u2", "q2", T0 + 5 * H, 1)               # another learner: ignored
    log(conn, "u1", T0 + 6 * H, ["q4"], [0.5], p)
    attempt(conn, "u1", "q4", T0 + 31 * H, 1)              # beyond the 24 h horizon: ignored
    log(conn, "u1", T0 + 7 * H, ["q3"], [0.9], p)
    log(conn, "u1", T0 + 8 * H, ["q3"], [0.7], e, strategy="top")   # a later engagement answer owns it
    attempt(conn, "u1", "q3", T0 + 9 * H, 1)
    log(conn, "u1", T0 + 23.5 * H, ["q5"], [0.4], p)
    log(conn, "u1", T0 + 24.5 * H, ["q5"], [0.45], p)      # after the window, still owns the attempt
    attempt(conn, "u1", "q5", T0 + 25 * H, 1)
    log(conn, "u1", T0 - 2 * H, ["q6"], [0.2], p)          # before the window
    attempt(conn, "u1", "q6", T0 + 1 * H, 0)

    assert outcomes(conn) == [(p, None, 0.3, 0), (p, None, 0.6, 1)]
    assert outcomes(conn, T1, T1 + 24 * H) == [(p, None, 0.45, 1)]


# ---- buckets, ECE, storage and the diagram ------------------------------------------------
PREDICTED = [0.15, 0.15, 0.72, 0.78, 0.95, 1.0]
OBSERVED = [1, 0, 1, 1, 0, 1]


def one_answer_with_outcomes(conn, model_id, user="u1", at=T0 + H, experiment=None, variant=None,
                             predicted=PREDICTED, observed=OBSERVED):
    items = [f"q{i + 1}" for i in range(len(predicted))]
    log(conn, user, at, items, predicted, model_id, experiment=experiment, variant=variant)
    for k, (item, y) in enumerate(zip(items, observed)):
        attempt(conn, user, item, at + (k + 1) * M, y)


def test_buckets_and_ece_match_a_hand_computation(conn, tmp_path):
    m = setup(conn)
    one_answer_with_outcomes(conn, m["practice"])
    report = calibrate.run(conn, T0, T1, tmp_path)

    [row] = reports(conn)
    assert (row["model_id"], row["variant"], row["n"]) == (m["practice"], None, 6)
    # buckets 1: (0.15, 0.15) -> 1/2; 7: (0.72, 0.78) -> 2/2; 9: (0.95, 1.0 clamped into the top bucket) -> 1/2
    expected_ece = (2 / 6) * abs(0.5 - 0.15) + (2 / 6) * abs(1.0 - 0.75) + (2 / 6) * abs(0.5 - 0.975)
    assert row["ece"] == pytest.approx(expected_ece, abs=1e-6)             # 0.358333
    buckets = row["buckets"]
    assert [b["n"] for b in buckets] == [0, 2, 0, 0, 0, 0, 0, 2, 0, 2]
    assert [(b["lower"], b["upper"]) for b in buckets[:2]] == [(0.0, 0.1), (0.1, 0.2)]
    assert buckets[1]["predicted"] == pytest.approx(0.15, abs=1e-6) and buckets[1]["observed"] == 0.5
    assert buckets[7]["predicted"] == pytest.approx(0.75, abs=1e-6) and buckets[7]["observed"] == 1.0
    assert buckets[9]["predicted"] == pytest.approx(0.975, abs=1e-6) and buckets[9]["observed"] == 0.5
    assert buckets[0] == {"lower": 0.0, "upper": 0.1, "n": 0, "predicted": None, "observed": None}
    assert report.groups[0].ece == pytest.approx(expected_ece, abs=1e-6)


def test_one_row_per_model_and_variant_and_one_valid_png_per_model(conn, tmp_path):
    m = setup(conn, users=("u1", "u2", "u3", "u4"))
    p = m["practice"]
    with conn.cursor() as cur:
        cur.execute("INSERT INTO models (unit_id, objective, mode, status, tag) "
                    "VALUES ('alg', 'practice', 'mf', 'active', 'b') RETURNING model_id")
        p2 = cur.fetchone()[0]
    conn.commit()
    one_answer_with_outcomes(conn, p, user="u1")                                          # no experiment: 6
    one_answer_with_outcomes(conn, p, user="u2", experiment="exp", variant="A",
                             predicted=[0.2, 0.4], observed=[0, 1])                       # exp/A: 2
    one_answer_with_outcomes(conn, p, user="u3", experiment="exp", variant="A",
                             predicted=[0.6], observed=[1])                               # exp/A: 1 more
    one_answer_with_outcomes(conn, p2, user="u4", experiment="exp", variant="B",
                             predicted=[0.9, 0.8, 0.3], observed=[1, 1, 0])               # model 2, exp/B: 3
    report = calibrate.run(conn, T0, T1, tmp_path)

    assert [(r["model_id"], r["variant"], r["n"]) for r in reports(conn)] == [
        (p, None, 6), (p, "exp/A", 3), (p2, "exp/B", 3)]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"calibration-model{p}-2026-11-23.png", f"calibration-model{p2}-2026-11-23.png"]
    for path in tmp_path.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
    table = report.table()
    assert "exp/A" in table and "exp/B" in table and "alg" in table


def test_a_rerun_replaces_the_window_and_leaves_other_windows_alone(conn, tmp_path):
    m = setup(conn)
    one_answer_with_outcomes(conn, m["practice"], predicted=[0.5, 0.5], observed=[1, 0])
    calibrate.run(conn, T0 - 24 * H, T0, tmp_path)        # the day before: nothing, but a valid run
    calibrate.run(conn, T0, T1, tmp_path)
    calibrate.run(conn, T0 + 12 * H, T1 + 12 * H, tmp_path)  # an overlapping, different window: nothing
    assert [r["n"] for r in reports(conn)] == [2]
    one_answer_with_outcomes(conn, m["practice"], user="u2", at=T0 + 2 * H, predicted=[0.9], observed=[1])
    calibrate.run(conn, T0, T1, tmp_path)
    assert [r["n"] for r in reports(conn)] == [3]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM calibration_reports")
        assert cur.fetchone()[0] == 1


# ---- the command --------------------------------------------------------------------------
@pytest.fixture
def cli_env(db_url, redis_url, monkeypatch):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)


def test_the_command_prints_a_summary_and_writes_the_diagram(conn, cli_env, tmp_path, capsys):
    m = setup(conn)
    one_answer_with_outcomes(conn, m["practice"])
    assert main(["calibrate", "--until", "2026-11-24", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2026-11-23 00:00 to 2026-11-24 00:00 UTC" in out
    assert f"calibration-model{m['practice']}-2026-11-23.png" in out and "0.358" in out
    assert (tmp_path / f"calibration-model{m['practice']}-2026-11-23.png").is_file()
    # --days 2 covers the same answers: a separate window with its own rows and file name
    assert main(["calibrate", "--until", "2026-11-24T00:00Z", "--days", "2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"calibration-model{m['practice']}-2026-11-23-2d.png").is_file()
    with conn.cursor() as cur:
        cur.execute("SELECT window_end - window_start, n FROM calibration_reports ORDER BY 1")
        assert cur.fetchall() == [(timedelta(days=1), 6), (timedelta(days=2), 6)]


def test_nothing_to_calibrate_exits_0_with_a_message(conn, cli_env, tmp_path, capsys):
    setup(conn)
    assert main(["calibrate", "--until", "2026-11-24", "--out", str(tmp_path)]) == 0
    assert "nothing to calibrate" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("until", ["yesterday", "2026-13-01", "2026-11-24T25:00"])
def test_a_bad_until_is_one_line_and_a_usage_error(cli_env, tmp_path, capsys, until):
    assert main(["calibrate", "--until", until, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--until" in err and repr(until) in err


def test_window_defaults_to_the_last_whole_utc_days_and_reads_zones():
    start, end = calibrate.window(None, 1)
    assert (end.hour, end.minute, end.tzinfo) == (0, 0, UTC) and end - start == timedelta(days=1)
    assert calibrate.window("2026-11-24T02:00+02:00", 7) == (datetime(2026, 11, 17, tzinfo=UTC),
                                                               datetime(2026, 11, 24, tzinfo=UTC))


# ---- the variant_outcomes view ------------------------------------------------------------
def test_variant_outcomes_on_a_hand_made_experiment(conn):
    m = setup(conn, users=("a1", "a2", "b1"))
    p, e = m["practice"], m["engagement"]
    t = T0 + 10 * H
    A = {"experiment": "exp", "variant": "A"}
    # a1: answer at t; attempts at t+5, +10, +12 (again), +20 (q3, owned by a later no-experiment
    # answer), then a new session at t+120, +130. Sessions after the first answer: 2, attempts: 6.
    attempt(conn, "a1", "q5", t - H, 1)                                   # before the first answer
    log(conn, "a1", t, ["q1", "q2", "q3"], [0.9, 0.6, 0.3], p, **A)
    attempt(conn, "a1", "q1", t + 5 * M, 1)                               # (0.9, 1)
    attempt(conn, "a1", "q2", t + 10 * M, 0)                              # (0.6, 0)
    attempt(conn, "a1", "q2", t + 12 * M, 1)                              # second attempt: not counted
    log(conn, "a1", t + 15 * M, ["q3"], [0.5], p)                         # no experiment: owns q3
    attempt(conn, "a1", "q3", t + 20 * M, 1)
    attempt(conn, "a1", "q4", t + 120 * M, 0)                             # gap 100 min: new session
    attempt(conn, "a1", "q4", t + 130 * M, 1)
    # a2: two answers, one attempted; attempts at t+61 and t+91 (a gap of exactly 30 min: same session)
    log(conn, "a2", t + 60 * M, ["q1"], [0.7], p, **A)
    attempt(conn, "a2", "q1", t + 61 * M, 0)                              # (0.7, 0)
    attempt(conn, "a2", "q3", t + 91 * M, 1)
    log(conn, "a2", t + 3 * H, ["q2"], [0.4], p, **A)                     # never attempted
    # b1: an engagement model's ranking scores (no p); one attempt in time, one beyond 24 h
    log(conn, "b1", t, ["q1", "q2"], [3.2, 1.5], e, strategy="top", experiment="exp", variant="B")
    attempt(conn, "b1", "q2", t + M, 1)
    attempt(conn, "b1", "q1", t + 2 * M, None, kind="view")              # not an attempt
    attempt(conn, "b1", "q1", t + 30 * H, 1)                              # beyond 24 h; its own session

    with conn.cursor() as cur:
        cur.execute("SELECT experiment, variant, learners, answers, recommended, attempted, success_rate, mean_p, "
                    "sessions, attempts_per_session FROM variant_outcomes ORDER BY experiment, variant")
        rows = [tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in cur.fetchall()]
    assert rows == [
        # A: a1's q1, q2 and a2's q1 attempted: 1 of 3 right, mean p (0.9 + 0.6 + 0.7) / 3; 8 attempts in 3 sessions
        ("exp", "A", 2, 3, 5, 3, 0.3333, 0.7333, 3, 2.6667),
        ("exp", "B", 1, 1, 2, 1, 1.0, None, 2, 1.0),
    ]
