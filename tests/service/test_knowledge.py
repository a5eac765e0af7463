"""What a learner knows (issue 26): the numbers (app.online.knowledge), the endpoint, the mastery and
review strategies and the nightly snapshot, on a course whose practice model is stored with known
parameters, against real Postgres and Redis. Every time is relative to NOW, passed explicitly."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.catalogue import catalog
from app.catalogue.ingest import record_interactions
from app.catalogue.records import Interaction, Item, Unit, User
from app.model import store as modelstore
from app.model.artifact import Calibration, Embedding, LearningTerms, ModelArtifact
from app.model.store import StoredModel
from app.online.fit import fit_user, posterior_sample, recency_weights
from app.online.knowledge import due_in_days, estimate, estimate_units, logit, typical_rows
from app.online.learning import DAY_S, FEATURES, features, later
from app.online.scoring import ServingModel, calibrated
from app.serving.knowledge import knowledge, unit_knowledge
from app.serving.recommend import RecommendationRequest, RequestContext, recommend
from jobs import knowledge as snapshot_job

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SKILLS = ("s1", "s2", "s3")
BIASES = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75)     # per skill: the median (lower middle) item has bias 0
FORGET = -1.0                                    # logit per log-day away from the skill
CLIP_DAYS = 60.0                                 # the days-away features' clip (what "the job saw")


def learning_block() -> dict:
    hi = [9.0] * len(FEATURES)
    hi[FEATURES.index("skill_days_away")] = hi[FEATURES.index("days_away")] = float(np.log1p(CLIP_DAYS))
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("skill_days_away")] = FORGET
    return {"features": list(FEATURES), "weights": weights, "max": hi}


def item_ids() -> list[str]:
    return [f"{s}-q{k}" for s in SKILLS for k in range(len(BIASES))]


def course_model(forgetting: bool = True) -> ModelArtifact:
    """A 1PL-like course model: no vector dimension to speak of, item easiness BIASES in every skill,
    skill offsets (sd 1.5) and, with `forgetting`, a logit lost per log-day away from the skill."""
    calibration = {"a": 1.0, "b": 0.0, "skill": {"sd": 1.5, "half_life": None}}
    if forgetting:
        calibration["learning"] = learning_block()
    n = len(item_ids())
    embedding = Embedding(item_ids(), np.zeros((n, 1)), np.array(BIASES * len(SKILLS)), np.zeros(2),
                          np.diag([0.01, 1.0]))
    return ModelArtifact.from_json(embedding, calibration,
                                   {"item_skills": [k for k in range(len(SKILLS)) for _ in BIASES]}, "practice")


def serving_model(forgetting: bool = True) -> ServingModel:
    return ServingModel.from_stored(StoredModel(1, "course", "practice", "mf", "default", course_model(forgetting)))


# ---- the numbers, without servers ---------------------------------------------------------------
def test_later_features_are_the_features_computed_at_the_later_time():
    rng = np.random.default_rng(4)
    item_skills = np.array([0, 0, 1, 1, -1, 2])
    h_rows = rng.integers(0, 5, 30)                  # skill 2 (row 5) never practised
    h_out = rng.integers(0, 2, 30).astype(float)
    h_times = 1.7e9 + np.sort(rng.uniform(0, 20 * DAY_S, 30))
    now = h_times[-1] + 2 * DAY_S
    cands = np.array([0, 2, 4, 5, -1])
    x = features(h_rows, h_out, h_times, now, cands, item_skills)
    for days in (0.0, 0.5, 3.0, 40.0):
        moved = later(x, np.full((len(cands), 1), days))[:, 0]
        np.testing.assert_allclose(moved, features(h_rows, h_out, h_times, now + days * DAY_S, cands, item_skills),
                                   atol=1e-9)
    assert later(x, np.full((len(cands), 1), 9.0))[3, 0, FEATURES.index("skill_days_away")] == 0.0


def posterior_case(seed: int) -> tuple[ServingModel, np.ndarray, np.ndarray, np.ndarray]:
    """A random 3-dimensional model of 40 items, a learner's 25 random attempts and 4,000 draws of
    their vector from the live fit's Laplace posterior."""
    rng = np.random.default_rng(seed)
    d, n = 3, 40
    embedding = Embedding([f"i{k}" for k in range(n)], rng.normal(scale=0.6, size=(n, d)), rng.normal(size=n),
                          np.zeros(d + 1), np.eye(d + 1))
    model = ServingModel.from_stored(StoredModel(1, "u", "practice", "mf", "default",
                                                 ModelArtifact(embedding, Calibration("platt", 1.3, -0.1))))
    h_rows = rng.integers(0, n, 25)
    h_out = rng.integers(0, 2, 25).astype(float)
    theta = fit_user(model.item_vectors[h_rows], model.item_biases[h_rows], h_out, model.prior_mean,
                     model.prior_precision)
    draws = np.array([posterior_sample(theta, model.item_vectors[h_rows], model.item_biases[h_rows], h_out,
                                       model.prior_precision, rng, recency_weights(25, None)) for _ in range(4000)])
    return model, h_rows, h_out, draws


def drawn_p(model: ServingModel, draws: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Calibrated p of `rows` (-1: the average item) under each drawn learner vector: (draws, rows)."""
    X = np.c_[np.where((rows >= 0)[:, None], model.item_vectors[np.maximum(rows, 0)], model.mean_vector),
              np.ones(len(rows))]
    b = np.where(rows >= 0, model.item_biases[np.maximum(rows, 0)], model.mean_bias)
    return calibrated(model.calibration, draws @ X.T + b)


def test_the_interval_is_the_posterior_draws_interval():
    model, h_rows, h_out, draws = posterior_case(7)
    cands = np.array([0, 5, 9, -1])
    found = estimate(model, h_rows, h_out, cands, np.full(4, 0.7))
    p = drawn_p(model, draws, cands)
    np.testing.assert_allclose(found.low, np.quantile(p, 0.05, axis=0), atol=0.015)
    np.testing.assert_allclose(found.high, np.quantile(p, 0.95, axis=0), atol=0.015)
    assert np.all(found.low < found.p) and np.all(found.p < found.high)
    more = estimate(model, np.r_[h_rows, h_rows, h_rows], np.r_[h_out, h_out, h_out], cands, np.full(4, 0.7))
    assert np.all(more.high - more.low < found.high - found.low)   # more attempts, a narrower interval


@pytest.mark.parametrize("slope_sd", [None, 0.5])
def test_the_items_own_error_widens_the_interval_on_the_logit(slope_sd):
    plain = serving_model()
    artifact = course_model()
    artifact = replace(artifact, calibration=replace(artifact.calibration, item_sd=0.7, item_slope_sd=slope_sd))
    wide = ServingModel.from_stored(StoredModel(1, "course", "practice", "mf", "default", artifact))
    h_rows, h_out = np.array([0, 1, 2, 6, 7]), np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    cands = np.array([2, 8, -1])
    a, b = (estimate(m, h_rows, h_out, cands, np.full(3, 0.7)) for m in (plain, wide))
    np.testing.assert_allclose(a.p, b.p)
    half = (logit(a.high) - logit(a.low)) / 2, (logit(b.high) - logit(b.low)) / 2
    # the learner's distance from the population on each item: their logit there minus the prior mean's
    distance = logit(a.p) - (np.array([BIASES[2], BIASES[2], np.mean(BIASES)]) + wide.prior_mean[-1])
    item_var = 0.7 ** 2 + (slope_sd or 0.0) ** 2 * distance ** 2
    np.testing.assert_allclose(half[1] ** 2, half[0] ** 2 + 1.6448536 ** 2 * item_var, rtol=1e-6)
    if slope_sd:
        assert np.all(np.abs(distance) > 0.1)   # the slope term is exercised


def test_a_unit_of_one_item_is_that_items_estimate():
    model = serving_model()
    h_rows, h_out = np.array([0, 1, 2, 6, 7, 7]), np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    h_times = NOW.timestamp() - DAY_S * np.array([9.0, 8.0, 8.0, 3.0, 2.0, 1.0])
    cands = np.array([2, 8, 14, -1])
    one = estimate(model, h_rows, h_out, cands, np.full(4, 0.7), h_times, NOW.timestamp())
    units = estimate_units(model, h_rows, h_out, [np.array([r]) for r in cands], cands, np.full(4, 0.7), h_times,
                           NOW.timestamp())
    for a, b in zip((one.p, one.low, one.high, one.due_days), (units.p, units.low, units.high, units.due_days)):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_a_units_p_is_the_mean_over_its_items_and_its_interval_the_posterior_draws():
    model, h_rows, h_out, draws = posterior_case(8)
    units = [np.arange(0, 10), np.arange(10, 40), np.array([3, -1])]
    found = estimate_units(model, h_rows, h_out, units, np.array([4, 25, 3]), np.full(3, 0.7))
    each = estimate(model, h_rows, h_out, np.arange(-1, 40), np.full(41, 0.7)).p
    np.testing.assert_allclose(found.p, [each[1:11].mean(), each[11:].mean(), (each[4] + each[0]) / 2])
    means = np.array([drawn_p(model, draws, rows).mean(axis=1) for rows in units]).T
    np.testing.assert_allclose(found.low, np.quantile(means, 0.05, axis=0), atol=0.015)
    np.testing.assert_allclose(found.high, np.quantile(means, 0.95, axis=0), atol=0.015)


def test_the_typical_item_is_the_median_difficulty_one():
    model = serving_model()
    assert typical_rows(model, [np.arange(6), np.array([8, 7, 6]), np.array([-1, 13]), np.array([-1])]).tolist() \
        == [2, 7, 13, -1]


def test_due_is_where_the_forecast_crosses_the_review_threshold():
    block = LearningTerms.from_json(learning_block())
    x = np.zeros((3, len(FEATURES)))
    x[:, FEATURES.index("skill_attempts")] = np.log1p([10, 10, 0])      # the third skill was never practised
    x[:, FEATURES.index("attempts")] = np.log1p(20)
    x[:, FEATURES.index("skill_days_away")] = np.log1p([1.0, 1.0, 0.0])
    x[:, FEATURES.index("days_away")] = np.log1p(0.5)
    z = np.array([3.0, 0.0, 3.0]) + FORGET * x[:, FEATURES.index("skill_days_away")]
    due = due_in_days(block, z, x, np.full(3, 0.7))
    # first skill: 3 - log1p(1 + t) = logit(0.7)
    assert due[0] == pytest.approx(np.expm1(3.0 - logit(np.array([0.7]))[0]) - 1.0, abs=1e-6)
    assert due[1] == pytest.approx(-1.0)        # below the threshold already at its last attempt, a day ago
    assert np.isnan(due[2])
    strong = np.array([6.0, 6.0, 6.0]) + FORGET * x[:, FEATURES.index("skill_days_away")]
    assert np.isnan(due_in_days(block, strong, x, np.full(3, 0.7))).all()   # 6 - log1p(60) stays above it
    assert np.isnan(due_in_days(None, z, x, np.full(3, 0.7))).all()


# ---- a course on real servers ---------------------------------------------------------------------
class Course:
    def __init__(self, app, conn, tenant: str = "default"):
        self.app, self.conn, self.tenant = app, conn, tenant
        self.cache = app.extensions["adaptrec"].cache
        self.models = app.extensions["adaptrec"].models

    def build(self, course_attrs: dict | None = None, skill_attrs: dict | None = None, forgetting: bool = True):
        with self.conn:
            catalog.upsert_units(self.conn, self.tenant, [
                Unit(unit_id="course", attrs=course_attrs or {}, children=list(SKILLS)),
                *[Unit(unit_id=s, kind="skill", attrs=(skill_attrs or {}).get(s, {})) for s in SKILLS]])
            catalog.upsert_items(self.conn, self.tenant, [Item(item_id=i, units=[i.split("-")[0]]) for i in item_ids()])
            model_id = modelstore.save_model(self.conn, self.tenant, course_model(forgetting),
                                             modelstore.ModelMeta("course", "practice", "mf"))
            modelstore.activate(self.conn, self.tenant, model_id)
        return self

    def learner(self, attrs: dict | None = None, **skills) -> str:
        """A new learner with, per skill, (outcomes, days before NOW of the first attempt), a minute apart."""
        user = f"learner-{uuid.uuid4().hex[:8]}"
        with self.conn:
            catalog.upsert_users(self.conn, self.tenant, [User(user_id=user, attrs=attrs or {})])
        events = []
        for skill, (outcomes, days_ago) in skills.items():
            start = NOW - timedelta(days=days_ago)
            events += [Interaction(event_id=f"{user}-{skill}-{k}", user_id=user,
                                   item_id=f"{skill}-q{k % len(BIASES)}", outcome=o,
                                   occurred_at=start + timedelta(minutes=k)) for k, o in enumerate(outcomes)]
        record_interactions(self.conn, self.tenant, self.cache, events, now=NOW)
        return user

    def knows(self, user: str, units=None, now: datetime = NOW) -> dict:
        ctx = RequestContext(self.conn, self.tenant, self.cache, self.models, now=now)
        return {u["unit_id"]: u for u in knowledge(ctx, user, units)["units"]}

    def recommend(self, user: str, strategy: str, n: int = 3, now: datetime = NOW, **kw) -> dict:
        req = RecommendationRequest(user_id=user, units=["course"], n=n, strategy=strategy, **kw)
        ctx = RequestContext(self.conn, self.tenant, self.cache, self.models, request_id=uuid.uuid4().hex, now=now)
        return recommend(ctx, req).as_json()


@pytest.fixture
def course(app, conn):
    return Course(app, conn).build()


STRONG, MIXED, WEAK = [1] * 30, [1, 0] * 5, [0] * 12


def test_mastered_means_the_interval_clears_the_units_threshold(app, conn):
    c = Course(app, conn).build(skill_attrs={"s2": {"mastery": {"threshold": 0.2}}})
    user = c.learner(s1=(STRONG, 0.1), s2=(MIXED, 0.1), s3=(WEAK, 0.1))
    known = c.knows(user, ["course"])
    assert list(known) == ["course", "s1", "s2", "s3"]
    for u in known.values():
        assert 0 < u["low"] < u["p"] < u["high"] < 1
    s1, s2, s3 = known["s1"], known["s2"], known["s3"]
    assert s1["mastered"] and s1["low"] >= 0.8
    assert s2["mastered"] and s2["low"] < 0.8        # its own threshold, 0.2
    assert not s3["mastered"] and s3["p"] < s2["p"] < s1["p"]
    assert (s1["attempts"], s1["correct"], s3["attempts"], s3["correct"]) == (30, 30, 12, 0)
    assert known["course"]["attempts"] == 52
    assert s1["last_practised"] == (NOW - timedelta(days=0.1) + timedelta(minutes=29)).isoformat()
    stricter = Course(app, conn).build(course_attrs={"mastery": {"threshold": 0.999}})   # the skills inherit it
    assert not any(u["mastered"] for u in stricter.knows(user, ["course"]).values())


def test_p_is_the_mean_of_what_predictions_give_on_the_units_items(course):
    from app.serving.recommend import predict

    user = course.learner(s1=(STRONG, 0.5), s2=(MIXED, 3.0))
    known = course.knows(user, ["course"])
    for unit_id, items in [(s, [i for i in item_ids() if i.startswith(s)]) for s in SKILLS] + [("course", item_ids())]:
        ctx = RequestContext(course.conn, "default", course.cache, course.models, now=NOW)
        predicted = predict(ctx, user, ["course"], items)
        assert known[unit_id]["p"] == pytest.approx(float(np.mean(predicted.p)), abs=1e-6), unit_id


def test_due_is_when_the_forecast_p_falls_below_the_review_threshold(course):
    user = course.learner(s1=(STRONG, 1.0), s3=(WEAK, 1.0))
    known = course.knows(user)
    assert list(known) == ["s1", "s3"]                  # by default: the units the learner practised
    due = datetime.fromisoformat(known["s1"]["due"])
    assert NOW < due < NOW + timedelta(days=CLIP_DAYS)
    # the forecast is what the service answers when that time comes (the history unchanged)
    before = course.knows(user, ["s1"], now=due - timedelta(hours=1))["s1"]
    after = course.knows(user, ["s1"], now=due + timedelta(hours=1))["s1"]
    assert before["p"] > 0.7 > after["p"]
    assert datetime.fromisoformat(after["due"]) == pytest.approx(due, abs=timedelta(seconds=1))
    # a skill below the threshold from the start is due since its last attempt
    assert known["s3"]["due"] == (NOW - timedelta(days=1) + timedelta(minutes=11)).isoformat()
    assert course.knows(user, ["s2"])["s2"]["due"] is None      # never practised


def test_attempts_count_the_whole_history_beyond_the_cached_one(course):
    from app.catalogue import history as hist

    long = [1, 0, 1] * (hist.KEEP // 3 + 4)                     # more attempts than the cache keeps
    user = course.learner(s1=(long, 30.0), s2=(MIXED, 1.0))
    for units in (None, ["s1", "s2"]):
        known = course.knows(user, units)
        assert (known["s1"]["attempts"], known["s1"]["correct"]) == (len(long), sum(long))
        assert (known["s2"]["attempts"], known["s2"]["correct"]) == (10, 5)
    short = course.learner(s1=(MIXED, 1.0))                       # within the cache: counted from it
    assert course.knows(short, ["s1"])["s1"]["attempts"] == course.knows(short)["s1"]["attempts"] == 10


def test_due_is_null_without_forgetting_terms_and_the_model_block_says_so(app, conn):
    c = Course(app, conn).build(forgetting=False)
    user = c.learner(s1=(STRONG, 1.0), s3=(WEAK, 1.0))
    answer = knowledge(RequestContext(conn, "default", c.cache, c.models, now=NOW), user, None)
    assert answer["model"]["forgetting"] is False and answer["model"]["models"][0]["forgetting"] is False
    assert all(u["due"] is None for u in answer["units"])
    with_terms = Course(app, conn).build()
    c.models.clear()
    assert knowledge(RequestContext(conn, "default", c.cache, with_terms.models, now=NOW), user,
                     None)["model"]["forgetting"] is True


def test_the_knowledge_endpoint_answers_per_unit(course, client, auth):
    user = course.learner(s1=(STRONG, 1.0), s2=(MIXED, 2.0))
    r = client.get(f"/v1/users/{user}/knowledge?units=course", headers=auth)
    assert r.status_code == 200, r.json
    body = r.json
    assert body["user_id"] == user and set(body) == {"user_id", "as_of", "units", "model"}
    assert [u["unit_id"] for u in body["units"]] == ["course", *SKILLS]
    assert set(body["units"][0]) == {"unit_id", "skill", "p", "low", "high", "attempts", "correct", "last_practised",
                                     "mastered", "due", "model_id"}
    assert [u["skill"] for u in body["units"]] == [False, True, True, True]
    assert body["model"]["models"][0]["unit_id"] == "course" and body["model"]["forgetting"] is True
    default = client.get(f"/v1/users/{user}/knowledge", headers=auth).json
    assert [u["unit_id"] for u in default["units"]] == ["s1", "s2"]
    nobody = client.get("/v1/users/nobody-yet/knowledge", headers=auth).json
    assert nobody["units"] == []


@pytest.mark.parametrize("query, status, fragment", [
    ("units=nowhere", 422, "nowhere"),
    ("units=", 422, "units"),
    ("units=s1,,s2", 422, "units"),
    ("n=3", 400, "unknown query parameter"),
    (f"units={','.join(f'u{k}' for k in range(101))}", 422, "at most 100"),
])
def test_bad_knowledge_requests_are_4xx_problems(course, client, auth, query, status, fragment):
    r = client.get(f"/v1/users/someone/knowledge?{query}", headers=auth)
    assert r.status_code == status, r.json
    assert r.mimetype == "application/problem+json" and fragment in r.get_data(as_text=True)


def test_the_knowledge_endpoint_needs_a_key(course, client):
    assert client.get("/v1/users/someone/knowledge").status_code == 401


# ---- the unit walks on cycles and diamonds -------------------------------------------------------
@pytest.fixture
def dag(conn):
    """R -> X -> Z and R -> Y -> Z (a diamond; R sets a threshold, Y is ordered); A -> B -> C -> A
    (a cycle, B sets a review threshold); one item in each of Z, X, A, B, C; z_off inactive in Z."""
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '10s'")   # a runaway recursive query fails instead of hanging
        cur.execute("""
            INSERT INTO units (unit_id, attrs) VALUES ('R', '{"mastery": {"threshold": 0.9}}'), ('X', '{}'),
                ('Y', '{"mastery": {"ordered": true}}'), ('Z', '{}'), ('A', '{}'),
                ('B', '{"mastery": {"review": 0.6}}'), ('C', '{}');
            INSERT INTO unit_children (parent, child) VALUES
                ('R', 'X'), ('R', 'Y'), ('X', 'Z'), ('Y', 'Z'), ('A', 'B'), ('B', 'C'), ('C', 'A');
            INSERT INTO items (item_id, active) VALUES ('z1', true), ('z_off', false), ('x1', true), ('a1', true),
                ('b1', true), ('c1', true);
            INSERT INTO unit_items (unit_id, item_id) VALUES ('Z', 'z1'), ('Z', 'z_off'), ('X', 'x1'), ('A', 'a1'),
                ('B', 'b1'), ('C', 'c1');""")
    return conn


def test_the_unit_walk_down_terminates_on_a_cycle_and_counts_a_diamond_once(dag):
    from app.infra import queries as q
    from app.serving.knowledge import plan

    nodes = {r["unit_id"]: r for r in q.fetch_all(dag, "knowledge_units", tenant="default", unit_ids=["R", "A"])}
    assert sorted(nodes) == ["A", "B", "C", "R", "X", "Y", "Z"]
    assert nodes["Z"]["items"] == ["z1", "z_off"] and nodes["Z"]["active_items"] == ["z1"]
    assert nodes["R"]["children"] == ["X", "Y"]
    planned = {p.unit_id: p for p in plan(nodes, ["R", "A"])}
    assert list(planned) == ["R", "X", "Z", "A", "B", "C"]      # Y has no items of its own; Z once
    assert planned["R"].items == ("x1", "z1", "z_off") and planned["R"].active == ("x1", "z1")
    assert planned["A"].items == ("a1", "b1", "c1")
    assert planned["Z"].settings.threshold == 0.9 and planned["C"].settings.review == 0.6


def test_the_settings_come_from_the_nearest_unit_above_through_a_cycle(dag):
    from app.serving.knowledge import inherited_settings

    found = inherited_settings(dag, "default", ["Z", "C", "A", "R"])
    assert found["Z"].threshold == 0.9 and not found["Z"].ordered   # from R; Y's `ordered` is Y's own
    assert found["C"].review == 0.6 and found["A"].review == 0.6     # A sits below B through the cycle
    assert "R" not in found                                           # nothing above it


def test_the_endpoint_refuses_more_units_than_one_answer_reports(course, client, auth, monkeypatch):
    import app.serving.knowledge

    monkeypatch.setattr(app.serving.knowledge, "MAX_REPORTED", 3)
    r = client.get("/v1/users/someone/knowledge?units=course", headers=auth)
    assert r.status_code == 422 and "ask for units lower in the hierarchy" in r.json["detail"]
    assert client.get("/v1/users/someone/knowledge?units=s1,s2", headers=auth).status_code == 200


# ---- the strategies ----------------------------------------------------------------------------------
def skills_of(answer: dict) -> list[str]:
    return [i["item_id"].split("-")[0] for i in answer["items"]]


def test_mastery_serves_the_weakest_skill_not_mastered(course):
    user = course.learner(s1=(STRONG, 0.1), s2=(MIXED, 0.1), s3=(WEAK, 0.1))
    answer = course.recommend(user, "mastery", n=4)
    assert answer["strategy"] == "mastery" and skills_of(answer) == ["s3"] * 4
    # the items nearest the target, as `target` would pick them within the skill
    ps = [i["p"] for i in answer["items"]]
    assert [abs(p - 0.5) for p in ps] == sorted(abs(p - 0.5) for p in ps)
    # more items than the skill holds: the next weakest follows
    assert skills_of(course.recommend(user, "mastery", n=8)) == ["s3"] * 6 + ["s2"] * 2


def test_mastery_follows_the_hierarchys_order_when_the_unit_is_ordered(app, conn):
    c = Course(app, conn).build(course_attrs={"mastery": {"ordered": True}})
    user = c.learner(s1=(STRONG, 0.1), s2=(MIXED, 0.1), s3=(WEAK, 0.1))
    assert skills_of(c.recommend(user, "mastery")) == ["s2"] * 3    # s1 is mastered; s2 comes before s3


def test_when_every_skill_is_mastered_mastery_says_so_and_reviews_what_is_due(app, conn):
    # review before mastery slips: due when p < 0.95, mastered while the interval's low end is >= 0.6
    c = Course(app, conn).build(course_attrs={"mastery": {"threshold": 0.6, "review": 0.95}})
    user = c.learner(s1=(STRONG, 0.01), s2=(STRONG, 0.01), s3=(STRONG, 0.01))
    fresh = c.recommend(user, "mastery")
    assert fresh["fallback"] == "all_mastered" and fresh["items"] == []
    due = min(datetime.fromisoformat(u["due"]) for u in c.knows(user).values())
    at = due + timedelta(hours=1)
    assert all(u["mastered"] for u in c.knows(user, now=at).values())
    later_on = c.recommend(user, "mastery", now=at)
    assert later_on["fallback"] == "all_mastered" and len(later_on["items"]) == 3


def test_review_serves_the_most_overdue_skill_first(course):
    user = course.learner(s1=(MIXED, 20.0), s2=(STRONG, 0.1), s3=(MIXED, 8.0))
    known = course.knows(user)
    assert known["s1"]["due"] < known["s3"]["due"] < NOW.isoformat() and known["s2"]["due"] > NOW.isoformat()
    answer = course.recommend(user, "review", n=8)
    assert answer["strategy"] == "review" and skills_of(answer) == ["s1"] * 6 + ["s3"] * 2
    nothing = course.recommend(course.learner(s2=(STRONG, 0.1)), "review")
    assert nothing["items"] == [] and nothing["fallback"] == "nothing_due"


def test_experiments_route_learners_to_the_mastery_and_review_strategies(course, client, auth):
    r = client.put("/v1/experiments/knowing", json={"variants": [{"name": "m", "weight": 1, "strategy": "mastery"}]},
                   headers=auth)
    assert r.status_code in (200, 201), r.json
    user = course.learner(s1=(STRONG, 1.0), s3=(WEAK, 1.0))
    answer = course.recommend(user, None, experiment="knowing")
    assert answer["strategy"] == "mastery" and answer["variant"] == "m" and set(skills_of(answer)) == {"s3"}


# ---- the nightly snapshot --------------------------------------------------------------------------
def test_the_snapshot_writes_each_learners_practised_units_and_the_view_counts_mastery(course, conn):
    strong = course.learner({"cohort": "north"}, s1=(STRONG, 0.1), s3=(WEAK, 0.1))
    weak = course.learner({"cohort": "south"}, s1=(WEAK, 1.0))
    report = snapshot_job.run(conn, "default", NOW, batch=1)
    assert (report.learners, report.rows, report.left_out) == (2, 3, False)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, unit_id, mastered, attempts, as_of FROM knowledge_snapshots ORDER BY 1, 2")
        rows = cur.fetchall()
        assert {(u, unit, m, a) for u, unit, m, a, _ in rows} == {(strong, "s1", True, 30), (strong, "s3", False, 12),
                                                                 (weak, "s1", False, 12)}
        assert {r[4] for r in rows} == {NOW}
        cur.execute("SELECT cohort, learners, mastered FROM unit_mastery WHERE unit_id = 's1' ORDER BY cohort")
        assert cur.fetchall() == [("(all)", 2, 1), ("north", 1, 1), ("south", 1, 0)]
    conn.rollback()
    assert snapshot_job.run(conn, "default", NOW).rows == 3         # a re-run replaces its rows
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM knowledge_snapshots")
        assert cur.fetchone()[0] == 3
    conn.rollback()
    bounded = snapshot_job.run(conn, "default", NOW + timedelta(days=1), max_learners=1)
    assert (bounded.learners, bounded.left_out, bounded.deleted) == (1, True, 0)
    later_on = snapshot_job.run(conn, "default", NOW + timedelta(days=5), keep_days=4)   # NOW's snapshot is too old
    assert (later_on.rows, later_on.deleted) == (3, 3)
    with conn.cursor() as cur:
        cur.execute("SELECT as_of, count(*) FROM knowledge_snapshots GROUP BY 1 ORDER BY 1")
        assert [(at, n) for at, n in cur.fetchall() if at != NOW + timedelta(days=1)] == [(NOW + timedelta(days=5), 3)]
    conn.rollback()


def snapshot_rows(conn, as_of: datetime) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("""SELECT user_id, unit_id, p, low, high, mastered, attempts, correct, last_practised, due
                       FROM knowledge_snapshots WHERE as_of = %s ORDER BY user_id, unit_id""", (as_of,))
        rows = cur.fetchall()
    conn.rollback()
    return rows


def test_the_snapshot_in_several_processes_writes_the_rows_of_one(course, conn, db_url):
    users = sorted([course.learner(s1=(STRONG, 0.1), s3=(WEAK, 2.0)), course.learner(s1=(MIXED, 1.0)),
                    course.learner(s2=(MIXED, 5.0), s3=(STRONG, 0.5)), course.learner(s1=(WEAK, 0.1)),
                    course.learner(s1=(MIXED, 3.0), s2=(WEAK, 1.0), s3=(MIXED, 0.2)), course.learner(s2=(STRONG, 9.0)),
                    course.learner(s3=(MIXED, 0.1))])
    one = snapshot_job.run(conn, "default", NOW)
    in_one = snapshot_rows(conn, NOW)
    assert (one.learners, one.rows) == (7, 11) and {r[0] for r in in_one} == set(users)
    ctx = RequestContext(conn, "default", course.cache, course.models, now=NOW)   # what the endpoint says
    assert [r[:3] for r in in_one] == [(u, k.unit_id, pytest.approx(k.p, abs=1e-6)) for u in users
                                       for k in unit_knowledge(ctx, ctx.learner(u), None)[0]]
    conn.rollback()
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM knowledge_snapshots")
    # parts of 2 learners over 3 processes: every learner once, each row as one process wrote it
    several = snapshot_job.run(conn, "default", NOW, batch=2, workers=3, database_url=db_url)
    assert (several.learners, several.rows, several.left_out) == (7, 11, False)
    assert snapshot_rows(conn, NOW) == in_one
    # the limit stays exact: the first 5 learners in id order, the rest said to be left
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM knowledge_snapshots")
    bounded = snapshot_job.run(conn, "default", NOW, batch=2, max_learners=5, workers=2, database_url=db_url)
    assert (bounded.learners, bounded.left_out) == (5, True)
    assert snapshot_rows(conn, NOW) == [r for r in in_one if r[0] in users[:5]]


def test_a_failed_part_fails_the_snapshot_run_and_the_parts_written_stay(course, conn, settings):
    from cli.knowledge import knowledge_snapshots

    users = sorted(course.learner(s1=(MIXED, 1.0)) for _ in range(4))
    with conn, conn.cursor() as cur:   # the third learner's row cannot be written
        cur.execute("ALTER TABLE knowledge_snapshots ADD CONSTRAINT test_refused CHECK (user_id <> %s)", (users[2],))
    try:
        with pytest.raises(Exception, match="test_refused"):
            knowledge_snapshots(settings, conn, "default", NOW, 1, 100, 90, quiet=True, workers=2)
        written = {r[0] for r in snapshot_rows(conn, NOW)}
        assert users[0] in written and users[2] not in written      # parts started before the failure finish
        with conn.cursor() as cur:
            cur.execute("SELECT outcome, detail->>'error' FROM job_runs WHERE job = 'knowledge_snapshot'")
            [(outcome, error)] = cur.fetchall()
        conn.rollback()
        assert outcome == "failed" and "test_refused" in error
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE knowledge_snapshots DROP CONSTRAINT test_refused")


def test_the_snapshot_and_the_endpoint_agree(course, conn):
    user = course.learner(s1=(MIXED, 3.0))
    snapshot_job.run(conn, "default", NOW)
    with conn.cursor() as cur:
        cur.execute("SELECT p, low, high, due FROM knowledge_snapshots WHERE user_id = %s", (user,))
        p, low, high, due = cur.fetchone()
    conn.rollback()
    ctx = RequestContext(conn, "default", course.cache, course.models, now=NOW)
    found, _ = unit_knowledge(ctx, ctx.learner(user), None)
    assert (p, low, high) == pytest.approx((found[0].p, found[0].low, found[0].high), abs=1e-6)
    assert due == found[0].due


def test_the_snapshot_command_writes_as_of_the_time_given(course, conn, db_url, redis_url, monkeypatch, capsys):
    from cli.main import main

    course.learner(s1=(MIXED, 3.0))
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    assert main(["knowledge", "snapshot", "--tenant", "default", "--as-of", "2026-03-02T12:00"]) == 0
    assert "1 rows for 1 learners" in capsys.readouterr().out
    with conn.cursor() as cur:
        cur.execute("SELECT as_of, unit_id FROM knowledge_snapshots")
        assert cur.fetchall() == [(NOW, "s1")]
        cur.execute("SELECT outcome, detail->>'rows' FROM job_runs WHERE job = 'knowledge_snapshot'")
        assert cur.fetchall() == [("succeeded", "1")]
    conn.rollback()


def test_the_analyst_examples_run(course, conn):
    from app.config import PROJECT_ROOT

    course.learner({"group": "9B"}, s1=(STRONG, 0.1), s3=(WEAK, 0.1))
    snapshot_job.run(conn, "default", NOW - timedelta(days=1))
    snapshot_job.run(conn, "default", NOW)
    section = (PROJECT_ROOT / "sql" / "README.md").read_text().split("## What learners know", 1)[1].split("\n## ")[0]
    code = section.split("```sql", 1)[1].split("```", 1)[0]
    statements = [s for s in code.split(";\n") if s.strip()]
    assert len(statements) == 4
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            cur.fetchall()
        cur.execute(statements[0])
        assert [r[0] for r in cur.fetchall()] == ["s3", "s1"]     # nobody has mastered s3
        cur.execute("SELECT DISTINCT cohort FROM unit_mastery ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["(all)", "9B"]
    conn.rollback()


# ---- the plan a worker keeps per catalogue version ------------------------------------------------
def test_the_plan_is_kept_until_the_catalogue_or_a_units_settings_change(app, conn):
    c = Course(app, conn).build()
    user = c.learner(s1=([1] * 8, 0.1))
    candidates = app.extensions["adaptrec"].candidates

    def ctx():
        return RequestContext(conn, c.tenant, c.cache, c.models, now=NOW, candidates=candidates)

    from app.serving.knowledge import knowledge_plan
    first = knowledge_plan(ctx(), ["course"])
    assert knowledge_plan(ctx(), ["course"]) is first                      # kept
    before = {u["unit_id"]: u for u in knowledge(ctx(), user, ["course"])["units"]}
    assert before["s1"]["attempts"] == 8 and not before["s1"]["mastered"]
    # a platform lowers s1's threshold: the unit's update bumps the catalogue version (migration 013)
    with conn:
        catalog.upsert_units(conn, c.tenant, [Unit(unit_id="s1", kind="skill", attrs={"mastery": {"threshold": 0.3}})])
    candidates.forget_version(c.tenant)                                   # as this worker's own API would
    after = {u["unit_id"]: u for u in knowledge(ctx(), user, ["course"])["units"]}
    assert knowledge_plan(ctx(), ["course"]) is not first
    assert after["s1"]["mastered"] and after["s1"]["p"] == before["s1"]["p"]
    # a new item in s2 is counted and can be the typical one
    with conn:
        catalog.upsert_items(conn, c.tenant, [Item(item_id="s2-new", units=["s2"])])
    candidates.forget_version(c.tenant)
    assert "s2-new" in knowledge_plan(ctx(), ["course"]).units_of_item
