-- 006: one definition of how a logged recommendation is paired with the attempt that followed,
-- used by the variant_outcomes view (redefined here on top of it, same columns and results) and by
-- `adaptrec calibrate` (sql/calibration.sql). See sql/README.md.
--
-- The rule: a recommended item is paired with the learner's FIRST attempt at it within `horizon`
-- after the answer that listed it; when several answers listed the item before that attempt, only
-- the LATEST one (of any strategy, model or experiment, in the window or not) is paired, so every
-- attempt is counted at most once.
--
-- A function rather than a view because the horizon bounds the search for the attempt (without it
-- an item never attempted would scan all of the learner's later history) and the window lets the
-- answers be found by recommendation_log_time. It is a single-SELECT, STABLE, non-STRICT SQL
-- function, so the planner inlines it into the calling query: filters on its columns (experiment,
-- model_id, p) are applied to the answers before the attempts are looked up, as if written inline.

CREATE FUNCTION prediction_outcomes(window_start timestamptz, window_end timestamptz, horizon interval)
RETURNS TABLE (
    log_id        bigint,       -- the recommendation_log row of the answer
    user_id       text,
    experiment    text,
    variant       text,
    model_id      bigint,
    created_at    timestamptz,  -- when the answer was logged
    item_id       text,
    p             float8,       -- the predicted p(correct); NULL when the scores were ranking scores
    attempted_at  timestamptz,
    outcome       smallint      -- 1 correct, 0 wrong
)
LANGUAGE sql STABLE
AS $$
WITH shown AS (
    -- one row per (answer logged in [window_start, window_end), recommended item); the score is a
    -- probability when it came from a practice model or from strategy 'target', which always
    -- serves one (or the no-model estimate) and so stands in for a model pruned since
    SELECT r.id AS log_id, r.user_id, r.experiment, r.variant, r.model_id, r.created_at, s.item_id,
           CASE WHEN coalesce(m.objective = 'practice', r.strategy = 'target') THEN s.score::float8 END AS p
    FROM recommendation_log r
    LEFT JOIN models m ON m.model_id = r.model_id
    CROSS JOIN LATERAL unnest(r.item_ids, r.scores) AS s (item_id, score)
    WHERE r.created_at >= window_start AND r.created_at < window_end
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
          AND i.occurred_at > sh.created_at AND i.occurred_at <= sh.created_at + horizon
        ORDER BY i.occurred_at, i.id
        LIMIT 1
    ) a
)
-- each attempt once: drop the pair when a later answer listed the item to the learner before the
-- attempt (that answer, in or out of the window, owns the attempt). `later.created_at >=
-- f.created_at` follows from the row comparison (which orders answers logged at the same time by
-- id); written out, it lets recommendation_log_user_time bound the scan on both sides.
SELECT f.log_id, f.user_id, f.experiment, f.variant, f.model_id, f.created_at, f.item_id, f.p,
       f.attempted_at, f.outcome
FROM followed f
WHERE NOT EXISTS (
    SELECT 1 FROM recommendation_log later
    WHERE later.user_id = f.user_id
      AND later.created_at >= f.created_at
      AND (later.created_at, later.id) > (f.created_at, f.log_id)
      AND later.created_at < f.attempted_at
      AND f.item_id = ANY (later.item_ids)
)
$$;

COMMENT ON FUNCTION prediction_outcomes(timestamptz, timestamptz, interval) IS 'Recommendations logged in [window_start, window_end) whose item the learner attempted within horizon after the answer, each attempt paired with the latest answer that listed the item before it: answer, item, predicted p (NULL for ranking scores), outcome.';

-- variant_outcomes as in 004, its pairing now read from prediction_outcomes over the whole history.
CREATE OR REPLACE VIEW variant_outcomes AS
WITH attempted AS (
    -- the attempted recommendations of experiments, each attempt once (the rule above, 24 hours)
    SELECT experiment, variant, p, outcome
    FROM prediction_outcomes('-infinity', 'infinity', interval '24 hours')
    WHERE experiment IS NOT NULL
),
answered AS (
    -- learners, answers and recommended items per variant
    SELECT experiment, variant, count(DISTINCT user_id) AS learners, count(*) AS answers,
           sum(cardinality(item_ids)) AS recommended
    FROM recommendation_log
    WHERE experiment IS NOT NULL
    GROUP BY experiment, variant
),
outcomes AS (
    -- the attempted recommendations per variant: how many, how often right, what was predicted
    SELECT experiment, variant, count(*) AS attempted, avg(outcome) AS success_rate, avg(p) AS mean_p
    FROM attempted
    GROUP BY experiment, variant
),
entry AS (
    -- each learner's first logged answer in each variant
    SELECT experiment, variant, user_id, min(created_at) AS first_answer
    FROM recommendation_log
    WHERE experiment IS NOT NULL
    GROUP BY experiment, variant, user_id
),
later_attempts AS (
    -- every attempt (any item) of those learners after their first answer, with the time since
    -- their previous such attempt (NULL for the first)
    SELECT e.experiment, e.variant,
           i.occurred_at - lag(i.occurred_at) OVER (PARTITION BY e.experiment, e.variant, e.user_id
                                                    ORDER BY i.occurred_at, i.id) AS gap
    FROM entry e
    JOIN interactions i ON i.user_id = e.user_id AND i.kind = 'attempt' AND i.occurred_at > e.first_answer
),
sessions AS (
    -- a session starts at a learner's first attempt and after every gap over 30 minutes; attempts
    -- per session pool the sessions of all the variant's learners
    SELECT experiment, variant, count(*) AS attempts,
           count(*) FILTER (WHERE gap IS NULL OR gap > interval '30 minutes') AS sessions
    FROM later_attempts
    GROUP BY experiment, variant
)
SELECT a.experiment,
       a.variant,
       a.learners,                                         -- distinct learners with a logged answer
       a.answers,                                          -- answers logged
       a.recommended,                                      -- items in those answers
       coalesce(o.attempted, 0) AS attempted,              -- recommended items attempted afterwards
       round(o.success_rate, 4) AS success_rate,           -- share of those attempts correct
       round(o.mean_p::numeric, 4) AS mean_p,              -- mean predicted p of those (NULL: no probabilities)
       coalesce(s.sessions, 0) AS sessions,                -- sessions after the learners' first answer
       round(s.attempts::numeric / nullif(s.sessions, 0), 4) AS attempts_per_session
FROM answered a
LEFT JOIN outcomes o USING (experiment, variant)
LEFT JOIN sessions s USING (experiment, variant);
