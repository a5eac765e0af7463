-- 004: a read-only view comparing the variants of A/B experiments (see sql/README.md).
--
-- A recommended item counts as attempted when the learner's FIRST attempt at it within 24 hours
-- after the answer that listed it exists; when several answers listed the item before that
-- attempt, only the LATEST one (of any experiment, or none) owns it, so each attempt is counted
-- once. The same rule pairs predictions with outcomes in `adaptrec calibrate` (sql/calibration.sql).

CREATE VIEW variant_outcomes AS
WITH shown AS (
    -- one row per (answer, recommended item) of an experiment; p is the score when the scores are
    -- probabilities: a practice model's, or the no-model estimate of strategy 'target' (as the
    -- service decides; strategy 'target' also stands in for a model pruned since)
    SELECT r.id AS log_id, r.experiment, r.variant, r.user_id, r.created_at, s.item_id,
           CASE WHEN coalesce(m.objective = 'practice', r.strategy = 'target') THEN s.score::float8 END AS p
    FROM recommendation_log r
    LEFT JOIN models m ON m.model_id = r.model_id
    CROSS JOIN LATERAL unnest(r.item_ids, r.scores) AS s (item_id, score)
    WHERE r.experiment IS NOT NULL
),
followed AS (
    -- the learner's first attempt at the item after the answer, within 24 hours
    SELECT sh.*, a.occurred_at AS attempted_at, a.outcome
    FROM shown sh
    CROSS JOIN LATERAL (
        SELECT i.occurred_at, i.outcome
        FROM interactions i
        WHERE i.user_id = sh.user_id AND i.item_id = sh.item_id
          AND i.kind = 'attempt' AND i.outcome IS NOT NULL
          AND i.occurred_at > sh.created_at AND i.occurred_at <= sh.created_at + interval '24 hours'
        ORDER BY i.occurred_at, i.id
        LIMIT 1
    ) a
),
attempted AS (
    -- each attempt once: a pair survives only when no later answer listed the item to the learner
    -- before the attempt (that answer owns the attempt)
    SELECT f.*
    FROM followed f
    WHERE NOT EXISTS (
        SELECT 1 FROM recommendation_log later
        WHERE later.user_id = f.user_id
          AND (later.created_at, later.id) > (f.created_at, f.log_id)
          AND later.created_at < f.attempted_at
          AND f.item_id = ANY (later.item_ids)
    )
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

COMMENT ON VIEW variant_outcomes IS 'Per experiment and variant: learners, answers, recommended items attempted within 24 h (each attempt once), their success rate and mean predicted p, attempts per 30-minute-gap session.';
