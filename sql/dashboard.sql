-- The dashboard (/dashboard, app/dashboard/): its sessions, the request-metrics rollup, and the
-- reads behind each page. Every read over a tenant's tables names :tenant and is answered from an
-- index (docs/BENCHMARKS.md, "The dashboard", has the timings on the demo and on ASSISTments).

-- name: database_now
-- The database's clock (the rollup and the session expiry use one clock).
SELECT now() AS now;

-- name: insert_dashboard_session
-- A new signed-in session; the token itself is never stored, only its hash.
INSERT INTO dashboard_sessions (token_hash, key_id, key_name, key_check, scopes, key_tenant, tenant, csrf_token,
                                expires_at)
VALUES (:token_hash, :key_id, :key_name, :key_check, :scopes, :key_tenant, :tenant, :csrf_token,
        now() + make_interval(secs => :ttl_s));

-- name: dashboard_session
-- The live session of the token hash :token_hash (none once expired).
SELECT token_hash, key_id, key_name, key_check, scopes, key_tenant, tenant, csrf_token, created_at, expires_at
FROM dashboard_sessions WHERE token_hash = :token_hash AND expires_at > now();

-- name: set_dashboard_session_tenant
-- An operator's session switches to another tenant (the CHECK keeps a tenant key's session on its own).
UPDATE dashboard_sessions SET tenant = :new_tenant WHERE token_hash = :token_hash;

-- name: delete_dashboard_session
-- Sign out.
DELETE FROM dashboard_sessions WHERE token_hash = :token_hash;

-- name: prune_dashboard_sessions
-- Forget expired sessions.
DELETE FROM dashboard_sessions WHERE expires_at < now();

-- name: insert_request_rollup
-- One minute's cumulative request totals of one source; the first writer of the minute wins.
INSERT INTO request_rollup (source, taken_at, overall, endpoints)
VALUES (:source, date_trunc('minute', :taken_at), :overall::jsonb, :endpoints::jsonb)
ON CONFLICT (source, taken_at) DO NOTHING;

-- name: prune_request_rollup
-- Drop snapshots older than :before.
DELETE FROM request_rollup WHERE taken_at < :before;

-- name: request_rollup_at
-- For each source that wrote after :since (and the source :current), its latest snapshot at or before :at.
-- One primary-key probe per source (LATERAL ... LIMIT 1), not a sort of every row before :at.
SELECT r.source, r.taken_at, r.overall, r.endpoints
FROM (SELECT DISTINCT source FROM request_rollup WHERE taken_at > :since
      UNION SELECT :current::text) s
CROSS JOIN LATERAL (
    SELECT source, taken_at, overall, endpoints FROM request_rollup
    WHERE source = s.source AND taken_at <= :at
    ORDER BY source DESC, taken_at DESC LIMIT 1
) r;

-- name: request_rollup_first
-- The first snapshot (still kept) of the source :source: where its counting starts.
SELECT source, taken_at, overall, endpoints FROM request_rollup WHERE source = :source ORDER BY taken_at LIMIT 1;

-- name: request_rollup_slots
-- The last snapshot of each source in each slot of :slot_s seconds after :since (totals only).
SELECT DISTINCT ON (source, slot) source, date_bin(make_interval(secs => :slot_s), taken_at,
                                                   TIMESTAMPTZ 'epoch') AS slot, taken_at, overall
FROM request_rollup
WHERE taken_at > :since
ORDER BY source, slot, taken_at DESC;

-- name: dash_job_runs
-- The tenant's latest :limit job runs (train, calibrate, import) with their state.
SELECT run_id, job, started_at, finished_at, state, duration_s, detail
FROM job_status WHERE tenant = :tenant
ORDER BY started_at DESC LIMIT :limit;

-- name: dash_active_models
-- The tenant's active models with their headline figures and age in seconds.
SELECT model_id, unit_id, objective, tag, mode, trained_at,
       extract(epoch FROM now() - trained_at)::float8 AS age_s,
       metrics -> 'model' AS held_out, metrics -> 'baseline' AS baseline
FROM models WHERE tenant = :tenant AND status = 'active'
ORDER BY trained_at, unit_id;

-- name: dash_daily_volume
-- Interactions per UTC day on the tenant's latest :days days that have any (a demo or an import of old data shows its own days).
WITH RECURSIVE days (day) AS (
    -- seed: the UTC day of the tenant's latest interaction (one probe of the (tenant, occurred_at) index)
    SELECT (SELECT date_trunc('day', max(occurred_at), 'UTC') FROM interactions WHERE tenant = :tenant)
    UNION ALL
    -- step: the latest earlier day with an interaction, one index probe each; the day strictly
    -- decreases, so no cycle is possible, and the walk stops when no earlier interaction is left
    -- (NULL) or, lazily, when the LIMIT below has its :days rows
    SELECT (SELECT date_trunc('day', max(i.occurred_at), 'UTC') FROM interactions i
            WHERE i.tenant = :tenant AND i.occurred_at < d.day)
    FROM days d WHERE d.day IS NOT NULL
),
latest AS (
    SELECT day FROM days WHERE day IS NOT NULL LIMIT :days
)
-- each day counted from the index alone (no heap visit for the kind: an index-only scan)
SELECT (l.day AT TIME ZONE 'UTC')::date AS day,
       (SELECT count(*) FROM interactions i
        WHERE i.tenant = :tenant AND i.occurred_at >= l.day AND i.occurred_at < l.day + interval '1 day') AS interactions
FROM latest l
ORDER BY l.day;

-- name: dash_units
-- Every unit of the tenant: id, name, kind, its training settings and its mastery settings.
SELECT unit_id, name, kind, attrs -> 'training' AS training, attrs -> 'mastery' AS mastery
FROM units WHERE tenant = :tenant ORDER BY unit_id;

-- name: dash_unit_edges
-- The tenant's unit hierarchy as (parent, child) pairs.
SELECT parent, child FROM unit_children WHERE tenant = :tenant ORDER BY parent, child;

-- name: dash_unit_models
-- Per unit and objective: the active model, else the newest one (with why it does not serve).
SELECT DISTINCT ON (unit_id, objective) model_id, unit_id, objective, tag, mode, status, trained_at,
       metrics -> 'model' AS held_out, metrics -> 'baseline' AS baseline, metrics ->> 'failure' AS failure
FROM models
WHERE tenant = :tenant AND tag = 'default'
ORDER BY unit_id, objective, (status = 'active') DESC, trained_at DESC, model_id DESC;

-- name: dash_unit_versions
-- Every stored version of the unit :unit_id's models, oldest first (the metric per night).
SELECT model_id, objective, tag, mode, status, algorithm, hyperparams, metrics, data_counts, training_seconds,
       trained_at, activated_at
FROM models
WHERE tenant = :tenant AND unit_id = :unit_id
ORDER BY objective, trained_at, model_id;

-- name: dash_unit_counts
-- Items under :unit_id (its whole sub-DAG) and the attempts and other interactions on them.
WITH RECURSIVE below (unit_id) AS (
    -- seed: the unit itself
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = :unit_id
    UNION
    -- step: the children of every unit reached; UNION drops units already reached, so a cycle ends the walk
    SELECT c.child FROM below b JOIN unit_children c ON c.tenant = :tenant AND c.parent = b.unit_id
),
under AS (
    SELECT DISTINCT ui.item_id FROM below b JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = b.unit_id
)
SELECT (SELECT count(*) FROM under) AS items,
       count(*) FILTER (WHERE i.kind = 'attempt') AS attempts,
       count(*) FILTER (WHERE i.kind <> 'attempt') AS engagements
FROM interactions i
WHERE i.tenant = :tenant AND i.item_id IN (SELECT item_id FROM under);

-- name: dash_calibration_latest
-- The newest calibration report of each model and variant of the tenant, with the model's unit.
SELECT DISTINCT ON (r.model_id, r.variant) r.id, r.model_id, r.variant, r.window_start, r.window_end, r.n, r.ece,
       r.buckets, r.created_at, m.unit_id, m.mode, m.status
FROM calibration_reports r
LEFT JOIN models m ON m.tenant = r.tenant AND m.model_id = r.model_id
WHERE r.tenant = :tenant
ORDER BY r.model_id, r.variant NULLS FIRST, r.window_end DESC, r.id DESC;

-- name: dash_calibration_history
-- Every calibration report of the model :model_id, oldest window first (ECE over time).
SELECT r.id, r.variant, r.window_start, r.window_end, r.n, r.ece, r.buckets, r.created_at
FROM calibration_reports r
WHERE r.tenant = :tenant AND r.model_id = :model_id
ORDER BY r.window_end, r.variant NULLS FIRST, r.id;

-- name: dash_model
-- One model of the tenant: unit, objective, mode, status, when trained.
SELECT model_id, unit_id, objective, tag, mode, status, trained_at FROM models
WHERE tenant = :tenant AND model_id = :model_id;

-- name: dash_variant_outcomes
-- The variants of experiment :experiment as variant_outcomes measures them (learners, answers, attempted, success, attempts per session).
SELECT variant, learners, answers, recommended, attempted, success_rate, mean_p, sessions, attempts_per_session
FROM variant_outcomes
WHERE tenant = :tenant AND experiment = :experiment
ORDER BY variant;

-- name: dash_item_stats
-- One item's interactions: attempts, success rate, learners, other kinds, first and last.
SELECT count(*) FILTER (WHERE kind = 'attempt') AS attempts,
       avg(outcome) FILTER (WHERE kind = 'attempt') AS success_rate,
       count(DISTINCT user_id) FILTER (WHERE kind = 'attempt') AS learners,
       count(*) FILTER (WHERE kind <> 'attempt') AS engagements,
       count(DISTINCT user_id) AS users,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
FROM interactions WHERE tenant = :tenant AND item_id = :item_id;

-- name: dash_models_with_item
-- The tenant's active models whose stored items include :item_id.
SELECT m.model_id, m.unit_id, m.objective, m.mode, m.trained_at
FROM models m JOIN model_arrays a ON a.model_id = m.model_id
WHERE m.tenant = :tenant AND m.status = 'active' AND :item_id = ANY (a.item_ids)
ORDER BY m.objective, m.unit_id;

-- name: dash_learner_summary
-- One learner's interactions: how many, attempts, success rate, distinct items, first and last.
SELECT count(*) AS interactions,
       count(*) FILTER (WHERE kind = 'attempt') AS attempts,
       avg(outcome) FILTER (WHERE kind = 'attempt') AS success_rate,
       count(DISTINCT item_id) AS items,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
FROM interactions WHERE tenant = :tenant AND user_id = :user_id;

-- name: dash_learner_history
-- The learner's latest :limit interactions, newest first, with each item's title.
SELECT i.occurred_at, i.item_id, it.title, i.kind, i.outcome, i.value, i.duration_ms
FROM interactions i
LEFT JOIN items it ON it.tenant = i.tenant AND it.item_id = i.item_id
WHERE i.tenant = :tenant AND i.user_id = :user_id
ORDER BY i.occurred_at DESC, i.id DESC
LIMIT :limit;

-- name: dash_learner_latest_unit
-- The unit holding the item of the learner's latest attempt (the learner page's default unit).
SELECT ui.unit_id
FROM (SELECT item_id FROM interactions WHERE tenant = :tenant AND user_id = :user_id AND kind = 'attempt'
      ORDER BY occurred_at DESC, id DESC LIMIT 1) last
JOIN unit_items ui ON ui.tenant = :tenant AND ui.item_id = last.item_id
ORDER BY ui.unit_id LIMIT 1;

-- name: dash_learner_answers
-- The learner's latest :limit logged recommendations, newest first.
SELECT created_at, units, experiment, variant, strategy, model_id, fallback, item_ids, scores
FROM recommendation_log
WHERE tenant = :tenant AND user_id = :user_id
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dash_item_titles
-- Titles of the items :item_ids.
SELECT item_id, title, kind FROM items WHERE tenant = :tenant AND item_id = ANY (:item_ids);

-- name: dash_find_items
-- Up to :limit items whose id or title contains :text (case-insensitive).
SELECT item_id, title, kind FROM items
WHERE tenant = :tenant AND (item_id ILIKE '%' || :text || '%' OR title ILIKE '%' || :text || '%')
ORDER BY item_id LIMIT :limit;

-- name: dash_active_learners
-- The :limit learners with the latest interactions (the learner page's suggestions).
SELECT user_id, max(occurred_at) AS last_seen
FROM (SELECT user_id, occurred_at FROM interactions WHERE tenant = :tenant ORDER BY occurred_at DESC LIMIT 500) recent
GROUP BY user_id ORDER BY max(occurred_at) DESC LIMIT :limit;

-- name: dash_unit_mastery
-- The unit's newest knowledge snapshot (unit_mastery, migration 010): learners who practised it,
-- how many have mastered it and how many are due for review, in all ('(all)' first) and per cohort.
SELECT m.as_of, m.cohort, m.learners, m.mastered, m.mastered_share, m.mean_p, m.due, m.attempts
FROM unit_mastery m
WHERE m.tenant = :tenant AND m.unit_id = :unit_id
  AND m.as_of = (SELECT max(k.as_of) FROM knowledge_snapshots k WHERE k.tenant = :tenant AND k.unit_id = :unit_id)
ORDER BY m.cohort <> '(all)', m.cohort
LIMIT 50;

-- name: dash_unit_mastery_history
-- The share of the unit's learners who had mastered it at each of its newest :limit snapshots, newest first.
SELECT m.as_of, m.learners, m.mastered, m.mastered_share
FROM unit_mastery m
WHERE m.tenant = :tenant AND m.unit_id = :unit_id AND m.cohort = '(all)'
ORDER BY m.as_of DESC
LIMIT :limit;

-- name: dash_units_below_mastery
-- For each unit below :unit_id (its whole sub-DAG) with rows in the tenant's newest knowledge
-- snapshot: its learners, how many have mastered it and how many are due (unit_mastery's '(all)'
-- figures, read from knowledge_snapshots directly so only these units are aggregated).
WITH RECURSIVE below (unit_id) AS (
    -- seed: the unit's children
    SELECT c.child FROM unit_children c WHERE c.tenant = :tenant AND c.parent = :unit_id
    UNION
    -- step: their children; UNION drops units already reached, so a cycle ends the walk
    SELECT c.child FROM below b JOIN unit_children c ON c.tenant = :tenant AND c.parent = b.unit_id
)
SELECT k.unit_id, k.as_of, count(*) AS learners, count(*) FILTER (WHERE k.mastered) AS mastered,
       round(avg(k.mastered::int), 4) AS mastered_share, round(avg(k.p)::numeric, 4) AS mean_p,
       count(*) FILTER (WHERE k.due <= k.as_of) AS due
FROM knowledge_snapshots k JOIN below b ON b.unit_id = k.unit_id
WHERE k.tenant = :tenant AND k.unit_id <> :unit_id
  AND k.as_of = (SELECT max(s.as_of) FROM knowledge_snapshots s WHERE s.tenant = :tenant)
GROUP BY k.unit_id, k.as_of
ORDER BY k.unit_id
LIMIT :limit;
