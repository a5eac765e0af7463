"""bench.totara's QUALITY part, for one training mode: the export written, imported and trained
through the product, the service asked /user-items for every user with a held-out positive and for
the cold users, and its answers scored beside the stored model offline and popularity."""
from __future__ import annotations

import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.totara.export import COMPONENT, MIN_RATING, write_export
from bench.totara.metrics import list_metrics, paired_difference, rounded, top_k
from bench.totara.service import (
    ask_service,
    import_and_train,
    load_serving_model,
    server_log_summary,
    totara_service,
)

OFFLINE_NOTES = {"model_offline_same_split": "the stored model, every exported item of the user excluded (the "
                                             "service's `top` rule): the nightly model's figure for this split",
                 "model_offline_same_split_job_rule": "the same scores, only the user's positives excluded "
                                                      "(jobs.training.engagement_fit.evaluate's rule)",
                 "popularity": "most exported positives, every exported item of the user excluded"}
JOB_SPLIT_NOTE = ("the job's own: a random 20 % of the exported positive pairs, scored before its refit on all of "
                  "them (NOT the bench's held-out ratings)")


@dataclass
class UserSets:
    """The split per user: the rows exported, each user's exported positives (`train_pos`), every
    exported item (`seen`, rating 0 or 1), held-out positives (`test_pos`), and the cold users'
    positives; `column` maps a movie id to its place in `movie_ids`."""
    exported: np.ndarray
    movie_ids: list[int]
    column: dict[int, int]
    train_pos: dict[int, set]
    seen: dict[int, set]
    test_pos: dict[int, set]
    test_users: list[int]
    cold_pos: dict[int, set]
    cold_users: list[int]
    rows_per_user: np.ndarray


def user_sets(ratings: np.ndarray, movies, cold: np.ndarray, held: np.ndarray) -> UserSets:
    is_cold = np.isin(ratings[:, 0], cold)
    exported = ~held & ~is_cold
    positive = ratings[:, 2] >= MIN_RATING
    movie_ids = [m for m, _, _ in movies]
    train_pos: dict[int, set] = {}
    seen: dict[int, set] = {}
    test_pos: dict[int, set] = {}
    for (u, m, _, _), e, h, p in zip(ratings, exported, held, positive):
        if e:
            seen.setdefault(int(u), set()).add(int(m))
        if e and p:
            train_pos.setdefault(int(u), set()).add(int(m))
        if h:
            test_pos.setdefault(int(u), set()).add(int(m))
    cold_pos = {int(u): {int(m) for m in ratings[(ratings[:, 0] == u) & positive, 1]} for u in cold}
    return UserSets(exported, movie_ids, {m: j for j, m in enumerate(movie_ids)}, train_pos, seen, test_pos,
                    sorted(test_pos), cold_pos, [u for u in cold if cold_pos[u]], np.bincount(ratings[exported, 0]))


def bench_quality_mode(server_url: str, settings, ratings, movies, users, cold, held, mode: str, args, say) -> dict:
    started = time.perf_counter()
    sets = user_sets(ratings, movies, cold, held)
    served = ask_in_mode(server_url, settings, ratings, movies, users, sets, mode, args, say)
    offline = score_offline(served["model"], ratings, sets)
    outcome, model = served["outcome"], served["model"]
    return {"mode": mode, "export": served["export"], "import_seconds": served["import_seconds"],
            "import_notes": served["import_notes"], "import_warnings": served["import_warnings"],
            "train_seconds": served["train_seconds"], "trained": served["trained"],
            "model": {"model_id": outcome.model_id, "mode": model.mode, "params": served["params"]},
            "warm": warm_report(served, offline, sets, int(held.sum())),
            "cold": cold_report(served, offline, sets, len(cold)), "server_log": served["server_log"],
            "seconds": {"ask_service": round(served["ask_seconds"], 1), "score_offline": round(offline["seconds"], 1),
                        "total": round(time.perf_counter() - started, 1)}}


def ask_in_mode(server_url: str, settings, ratings, movies, users, sets: UserSets, mode: str, args, say) -> dict:
    """Write the export, import and train it in `mode`, then ask the service for the warm and the
    cold users' /user-items; the database and the service are gone when this returns."""
    from harness.databases import scratch_database

    key = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="adaptrec-totara-") as tmp, \
            scratch_database(server_url, "adaptrec_totarabench") as url:
        sizes = write_export(Path(tmp), ratings, sets.exported, movies, users,
                             component_columns=not args.no_component_columns)
        say(f"{mode}: export written ({sizes}); importing and training")
        trained = import_and_train(url, Path(tmp), mode, args.seed, args.threads)
        say(f"{mode}: imported in {trained['import_seconds']} s, trained in {trained['train_seconds']} s")
        model, params = load_serving_model(url, trained["outcome"].model_id)
        with ExitStack() as stack:
            service = totara_service(stack, url, settings, Path(tmp), args.workers, key)
            t0 = time.perf_counter()
            warm_answers, warm_calls = ask_service(service.base_url, key, sets.test_users)
            cold_answers, cold_calls = ask_service(service.base_url, key, sets.cold_users)
            ask_s = time.perf_counter() - t0
            server_log = server_log_summary(service.log_path)
    say(f"{mode}: asked /user-items for {len(sets.test_users)} + {len(sets.cold_users)} users in {ask_s:.1f} s")
    return {"export": sizes, "import_seconds": trained["import_seconds"], "train_seconds": trained["train_seconds"],
            "import_notes": trained["import_notes"], "import_warnings": trained["import_warnings"],
            "trained": trained["outcomes"], "outcome": trained["outcome"], "model": model, "params": params,
            "warm_answers": warm_answers, "warm_calls": warm_calls, "cold_answers": cold_answers,
            "cold_calls": cold_calls, "ask_seconds": ask_s, "server_log": server_log}


def score_offline(model, ratings: np.ndarray, sets: UserSets) -> dict:
    """The stored model offline, folded in from every exported positive of the user (no history
    window). The job's rule excludes the user's positives from the ranking; the service's `top`
    strategy excludes every item the user interacted with (rating 0 too), so both are kept; and
    popularity by exported interactions and by exported positives."""
    from bench.topn_job import serving_scores

    t0 = time.perf_counter()
    movie_ids, users = sets.movie_ids, sets.test_users
    scores = serving_scores(model, [np.array([sets.column[m] for m in sorted(sets.train_pos.get(u, ()))],
                                             dtype=np.int64) for u in users], [f"{COMPONENT}{m}" for m in movie_ids])
    job_rule = [top_k(scores[i], movie_ids, sets.train_pos.get(u, set())) for i, u in enumerate(users)]
    offline = [top_k(scores[i], movie_ids, sets.seen.get(u, set())) for i, u in enumerate(users)]
    seconds = time.perf_counter() - t0
    cols = np.array([sets.column[int(m)] for m in ratings[sets.exported, 1]])
    interactions_count = np.bincount(cols, minlength=len(movie_ids)).astype(np.float64)
    positives_count = np.bincount(cols, weights=ratings[sets.exported, 2] >= MIN_RATING, minlength=len(movie_ids))
    return {"offline": offline, "job_rule": job_rule, "seconds": seconds,
            "popular": [top_k(positives_count, movie_ids, sets.seen.get(u, set())) for u in users],
            "interactions_count": interactions_count, "positives_count": positives_count}


def warm_report(served: dict, offline: dict, sets: UserSets, held_out: int) -> dict:
    """The warm users: the service, the model offline and popularity on the held-out positives,
    their differences, where the service and the model part, and the job's own figures."""
    from app.catalogue.history import KEEP

    answers, users, off, popular = served["warm_answers"], sets.test_users, offline["offline"], offline["popular"]
    relevant = [sets.test_pos[u] for u in users]
    leaks = [(u, int(sets.rows_per_user[u]), sorted(set(a) & sets.train_pos.get(u, set())))
             for a, u in zip(answers, users) if set(a) & sets.seen.get(u, set())]
    heavy = [i for i, u in enumerate(users) if sets.rows_per_user[u] > KEEP]
    job = served["outcome"].metrics
    warm = {
        "users": len(users), "held_out_positives": held_out,
        "service_user_items": list_metrics(answers, relevant),
        "model_offline_same_split": list_metrics(off, relevant),
        "model_offline_same_split_job_rule": list_metrics(offline["job_rule"], relevant),
        "popularity": list_metrics(popular, relevant),
        "job_own_split": {"model": {k: rounded(job["model"][k]) for k in ("precision_at_10", "ndcg_at_10")}
                          | {"users": job["model"]["users"]},
                          "popularity": {k: rounded(job["baseline"][k]) for k in ("precision_at_10", "ndcg_at_10")},
                          "split": JOB_SPLIT_NOTE},
        "differences": {"service_minus_offline": paired_difference(answers, off, relevant),
                        "service_minus_popularity": paired_difference(answers, popular, relevant),
                        "offline_minus_popularity": paired_difference(off, popular, relevant)},
        "service_vs_offline": {
            "identical_top10": sum(a == o for a, o in zip(answers, off)),
            "answers_with_an_item_already_interacted_with": len(leaks),
            "those_answers": [{"user": u, "exported_rows": n, "exported_positives_recommended": p}
                              for u, n, p in leaks[:10]],
            "users_with_more_exported_rows_than_history_keep": len(heavy), "history_keep": KEEP,
            "service_on_those_users": list_metrics([answers[i] for i in heavy], [relevant[i] for i in heavy]),
            "offline_on_those_users": list_metrics([off[i] for i in heavy], [relevant[i] for i in heavy])},
        "calls": served["warm_calls"],
        "notes": OFFLINE_NOTES,
    }
    service_p = warm["service_user_items"]["precision_at_10"] or 0.0
    warm["target"] = {"service_p10>=offline_p10_same_split": service_p
                      >= (warm["model_offline_same_split"]["precision_at_10"] or 0.0),
                      "service_p10>=popularity_p10": service_p >= (warm["popularity"]["precision_at_10"] or 0.0)}
    return warm


def cold_report(served: dict, offline: dict, sets: UserSets, cold_total: int) -> dict:
    """The cold users (none of their ratings exported): the service against popularity by exported
    positives and by exported interactions, on every 4-5 star rating of theirs."""
    answers, users, movie_ids = served["cold_answers"], sets.cold_users, sets.movie_ids
    relevant = [sets.cold_pos[u] for u in users]
    by_positives = [top_k(offline["positives_count"], movie_ids, set())] * len(users)
    by_interactions = [top_k(offline["interactions_count"], movie_ids, set())] * len(users)
    return {
        "users": len(users), "cold_users_total": cold_total,
        "service_user_items": list_metrics(answers, relevant),
        "popularity_positives": list_metrics(by_positives, relevant),
        "popularity_interactions": list_metrics(by_interactions, relevant),
        "service_minus_popularity_positives": paired_difference(answers, by_positives, relevant),
        "distinct_answers": len({tuple(a) for a in answers}),
        "service_answer": answers[0] if answers else None,
        "popularity_positives_answer": by_positives[0] if by_positives else None,
        "popularity_interactions_answer": by_interactions[0] if by_interactions else None,
        "calls": served["cold_calls"],
        "relevant": "every 4-5 star rating of the cold user (none of their ratings was exported)",
    }
