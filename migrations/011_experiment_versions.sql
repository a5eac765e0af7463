-- 011: experiments judged by learning (issue 27). An experiment's variants are versioned: a PUT
-- that changes them starts a new version, and its results are read per version (the learners and
-- answers logged from the version's start to the next one's), so a variant changed mid-run never
-- mixes two designs in one figure. Two views let an analyst recompute the figures of
-- GET /v1/experiments/{name}/results (sql/README.md, "Experiments judged by learning").

-- One row per version of an experiment's variants, written by the PUT that made it
-- (app/serving/experiments.py: save). Small: a reference table beside experiments.
CREATE TABLE experiment_versions (
    tenant      text NOT NULL,
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    variants    jsonb NOT NULL,          -- as experiments.variants was during the version
    started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name, version),
    FOREIGN KEY (tenant, name) REFERENCES experiments (tenant, name) ON DELETE CASCADE
);
COMMENT ON TABLE experiment_versions IS 'Each version of an experiment''s variants and when it started; results are split by version.';

-- The experiments made before this migration: their variants as version 1, from their creation.
INSERT INTO experiment_versions (tenant, name, version, variants, started_at)
SELECT tenant, name, 1, variants, created_at FROM experiments;

-- Each learner's exposure to an experiment version: the variant of their first answer logged in
-- the version's window [started_at, ended_at: the next version's start), when they joined, how
-- many answers.
CREATE VIEW experiment_exposures AS
WITH windows AS (
    SELECT v.tenant, v.name, v.version, v.variants, v.started_at,
           coalesce(lead(v.started_at) OVER (PARTITION BY v.tenant, v.name ORDER BY v.version), 'infinity') AS ended_at
    FROM experiment_versions v
)
SELECT w.tenant, w.name AS experiment, w.version, w.ended_at, r.user_id,
       (array_agg(r.variant ORDER BY r.created_at, r.id))[1] AS variant,
       min(r.created_at) AS joined,
       count(*) AS answers,
       count(DISTINCT r.variant) AS variants_seen      -- more than 1: the routing moved the learner
FROM windows w
JOIN recommendation_log r ON r.tenant = w.tenant AND r.experiment = w.name
                         AND r.created_at >= w.started_at AND r.created_at < w.ended_at
GROUP BY w.tenant, w.name, w.version, w.ended_at, r.user_id;
COMMENT ON VIEW experiment_exposures IS 'Per experiment version and learner: the variant of their first logged answer in the version, when they joined, answers logged.';

-- Every attempt of those learners from the moment they joined to the version's end, with what the learning measures
-- need: whether it is the learner's first attempt at the item ever, the attempt's practice
-- opportunity (the learner's attempts before it since joining), its skill (the item's first unit
-- by id) and the days since the learner's previous attempt at that skill (over their whole history).
CREATE VIEW experiment_attempts AS
WITH item_unit AS (
    SELECT tenant, item_id, min(unit_id) AS unit_id FROM unit_items GROUP BY tenant, item_id
),
history AS (
    SELECT e.tenant, e.experiment, e.version, e.variant, e.user_id, e.joined, e.ended_at, i.id, i.item_id, iu.unit_id,
           i.outcome, i.occurred_at,
           row_number() OVER (PARTITION BY e.tenant, e.experiment, e.version, e.user_id, i.item_id
                              ORDER BY i.occurred_at, i.id) = 1 AS first_at_item,
           extract(epoch FROM i.occurred_at - lag(i.occurred_at) OVER (
               PARTITION BY e.tenant, e.experiment, e.version, e.user_id, iu.unit_id
               ORDER BY i.occurred_at, i.id))::float8 / 86400.0 AS days_away
    FROM experiment_exposures e
    JOIN interactions i ON i.tenant = e.tenant AND i.user_id = e.user_id
                       AND i.kind = 'attempt' AND i.outcome IS NOT NULL
    LEFT JOIN item_unit iu ON iu.tenant = i.tenant AND iu.item_id = i.item_id
)
SELECT tenant, experiment, version, variant, user_id, id AS interaction_id, item_id, unit_id, outcome, occurred_at,
       first_at_item,
       row_number() OVER (PARTITION BY tenant, experiment, version, user_id ORDER BY occurred_at, id) - 1 AS opportunity,
       days_away
FROM history
WHERE occurred_at >= joined AND occurred_at < ended_at;
COMMENT ON VIEW experiment_attempts IS 'Per experiment version: every attempt of its learners since they joined, with first-at-item, practice opportunity, skill and days since the skill''s previous attempt.';
