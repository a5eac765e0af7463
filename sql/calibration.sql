-- Calibration monitoring (adaptrec calibrate): the p(correct) practice models predicted, joined to
-- the attempts that followed, and the calibration_reports rows built from them.
--
-- The pairing rule (the same as the variant_outcomes view of migration 004): a recommended item
-- is paired with the learner's FIRST attempt at it within :horizon_hours after the answer that
-- listed it; when several answers listed the item before that attempt, only the LATEST one (of
-- any strategy, model or experiment) is paired, so every attempt is counted at most once.

-- name: calibration_outcomes
-- Each recommendation of a practice model logged in [:window_start, :window_end) that was attempted afterwards: model, variant, predicted p, outcome.
WITH shown AS (
    -- one row per (answer, recommended item) in the window whose score is a practice model's p.
    -- strategy 'target' always serves a practice model, so it stands in for a model since pruned.
    SELECT r.id AS log_id, r.user_id, r.model_id, r.created_at, s.item_id, s.p::float8 AS p,
           CASE WHEN r.experiment IS NOT NULL THEN r.experiment || '/' || coalesce(r.variant, '') END AS variant
    FROM recommendation_log r
    LEFT JOIN models m ON m.model_id = r.model_id
    CROSS JOIN LATERAL unnest(r.item_ids, r.scores) AS s (item_id, p)
    WHERE r.created_at >= :window_start AND r.created_at < :window_end
      AND r.model_id IS NOT NULL
      AND coalesce(m.objective = 'practice', r.strategy = 'target')
      AND s.p BETWEEN 0 AND 1          -- a probability (Postgres sorts NaN above 1, so NaN is out)
),
followed AS (
    -- the learner's first attempt at the item after the answer, within the horizon
    SELECT sh.*, a.occurred_at AS attempted_at, a.outcome
    FROM shown sh
    CROSS JOIN LATERAL (
        SELECT i.occurred_at, i.outcome
        FROM interactions i
        WHERE i.user_id = sh.user_id AND i.item_id = sh.item_id
          AND i.kind = 'attempt' AND i.outcome IS NOT NULL
          AND i.occurred_at > sh.created_at
          AND i.occurred_at <= sh.created_at + make_interval(hours => :horizon_hours)
        ORDER BY i.occurred_at, i.id
        LIMIT 1
    ) a
)
-- each attempt once: drop the pair when a later answer listed the item to the learner before the
-- attempt (that answer, in or out of the window, owns the attempt)
SELECT f.model_id, f.variant, f.p, f.outcome
FROM followed f
WHERE NOT EXISTS (
    SELECT 1 FROM recommendation_log later
    WHERE later.user_id = f.user_id
      AND (later.created_at, later.id) > (f.created_at, f.log_id)
      AND later.created_at < f.attempted_at
      AND f.item_id = ANY (later.item_ids)
)
ORDER BY f.model_id, f.variant NULLS FIRST;

-- name: calibration_models
-- Unit, tag and mode of the models :model_ids (a pruned model has no row).
SELECT model_id, unit_id, tag, mode FROM models WHERE model_id = ANY(:model_ids);

-- name: delete_calibration_window
-- Remove the reports of exactly the window [:window_start, :window_end), so a re-run replaces them.
DELETE FROM calibration_reports WHERE window_start = :window_start AND window_end = :window_end;

-- name: insert_calibration_report
-- One report row: a model and variant (NULL: no experiment; else 'experiment/variant') over a window.
INSERT INTO calibration_reports (model_id, variant, window_start, window_end, n, ece, buckets)
VALUES (:model_id, :variant, :window_start, :window_end, :n, :ece, :buckets::jsonb);

-- name: calibration_reports_for_window
-- The stored reports of the window [:window_start, :window_end), by model and variant.
SELECT model_id, variant, window_start, window_end, n, ece, buckets, created_at
FROM calibration_reports
WHERE window_start = :window_start AND window_end = :window_end
ORDER BY model_id, variant NULLS FIRST;
