-- Calibration monitoring (adaptrec calibrate): the p(correct) practice models predicted, joined to
-- the attempts that followed, and the calibration_reports rows built from them.
--
-- The pairing of a logged prediction with the attempt that followed is the function
-- prediction_outcomes (migration 006), the same rule as the variant_outcomes view: a recommended
-- item is paired with the learner's FIRST attempt at it within :horizon_hours after the answer
-- that listed it; when several answers listed the item before that attempt, only the LATEST one
-- (of any strategy, model or experiment) is paired, so every attempt is counted at most once.

-- name: calibration_outcomes
-- Each recommendation of a practice model logged in [:window_start, :window_end) that was attempted afterwards: model, variant, predicted p, outcome.
-- The function is inlined, so these filters are applied to the logged answers (found by
-- recommendation_log_time) before any attempt is looked up.
SELECT o.model_id,
       CASE WHEN o.experiment IS NOT NULL THEN o.experiment || '/' || coalesce(o.variant, '') END AS variant,
       o.p, o.outcome
FROM prediction_outcomes(:window_start, :window_end, make_interval(hours => :horizon_hours)) o
WHERE o.tenant = :tenant AND o.model_id IS NOT NULL
  -- a practice model's probability: p is NULL for ranking scores (and Postgres sorts NaN above 1)
  AND o.p BETWEEN 0 AND 1
ORDER BY o.model_id, variant NULLS FIRST;

-- name: calibration_models
-- Unit, tag and mode of the models :model_ids (a pruned model has no row).
SELECT model_id, unit_id, tag, mode FROM models WHERE tenant = :tenant AND model_id = ANY(:model_ids);

-- name: delete_calibration_window
-- Remove the reports of exactly the window [:window_start, :window_end), so a re-run replaces them.
DELETE FROM calibration_reports WHERE tenant = :tenant AND window_start = :window_start AND window_end = :window_end;

-- name: insert_calibration_report
-- One report row: a model and variant (NULL: no experiment; else 'experiment/variant') over a window.
INSERT INTO calibration_reports (tenant, model_id, variant, window_start, window_end, n, ece, buckets)
VALUES (:tenant, :model_id, :variant, :window_start, :window_end, :n, :ece, :buckets::jsonb);

-- name: calibration_reports_for_window
-- The stored reports of the window [:window_start, :window_end), by model and variant.
SELECT model_id, variant, window_start, window_end, n, ece, buckets, created_at
FROM calibration_reports
WHERE tenant = :tenant AND window_start = :window_start AND window_end = :window_end
ORDER BY model_id, variant NULLS FIRST;
