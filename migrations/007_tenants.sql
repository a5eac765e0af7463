-- 007: tenants. Every user, item, unit, interaction, model, experiment, API key, log row, report
-- and job run belongs to exactly one tenant; the same id in two tenants is two different things.
-- A single-tenant deployment lives in the tenant 'default' and sees no change.
--
-- Layout (docs/ARCHITECTURE.md, "Tenants"): one set of tables with a `tenant` column leading
-- every primary key, unique constraint, foreign key and hot index, rather than a schema or a
-- database per tenant. So the tenant can be the distribution column of a sharded Postgres
-- (Citus) without changing a constraint, an analyst compares tenants with a GROUP BY, and a
-- thousand small tenants cost a thousand rows, not a thousand schemas. The column is text (the
-- tenant's name as Totara or the operator gives it): readable in every query and log line.
-- Existing rows go to 'default', and the column keeps that default so a single-tenant
-- deployment's own SQL (psql, scripts) works unchanged; adaptrec's own queries always name the
-- tenant (tests/test_tenants.py checks every query that touches a tenant table does).

CREATE TABLE tenants (
    tenant      text PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name        text,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,   -- e.g. {"totara_mode": "partial"}
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (tenant, name) VALUES ('default', 'the default tenant');

-- The views and the function read the tables being changed: dropped here, recreated below
-- with the tenant as their first column.
DROP VIEW variant_outcomes;
DROP FUNCTION prediction_outcomes(timestamptz, timestamptz, interval);
DROP VIEW attempt_history, item_stats, user_activity, daily_volume, job_status;
DROP VIEW unit_paths;

-- Foreign keys that will name the tenant too.
ALTER TABLE unit_children DROP CONSTRAINT unit_children_parent_fkey, DROP CONSTRAINT unit_children_child_fkey;
ALTER TABLE unit_items DROP CONSTRAINT unit_items_unit_id_fkey, DROP CONSTRAINT unit_items_item_id_fkey;
ALTER TABLE interactions DROP CONSTRAINT interactions_user_id_fkey, DROP CONSTRAINT interactions_item_id_fkey;
ALTER TABLE models DROP CONSTRAINT models_unit_id_fkey;

-- The column, 'default' for existing rows (no rewrite: a constant default).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'items', 'units', 'unit_children', 'unit_items', 'interactions',
                             'models', 'experiments', 'recommendation_log', 'calibration_reports',
                             'api_keys', 'job_runs']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN tenant text NOT NULL DEFAULT ''default'' '
                       'REFERENCES tenants (tenant) ON DELETE CASCADE', t);
    END LOOP;
END $$;

-- Keys: the tenant leads.
ALTER TABLE users DROP CONSTRAINT users_pkey, ADD PRIMARY KEY (tenant, user_id);
ALTER TABLE items DROP CONSTRAINT items_pkey, ADD PRIMARY KEY (tenant, item_id);
ALTER TABLE units DROP CONSTRAINT units_pkey, ADD PRIMARY KEY (tenant, unit_id);
ALTER TABLE unit_children DROP CONSTRAINT unit_children_pkey, ADD PRIMARY KEY (tenant, parent, child),
    ADD FOREIGN KEY (tenant, parent) REFERENCES units (tenant, unit_id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant, child) REFERENCES units (tenant, unit_id) ON DELETE CASCADE;
DROP INDEX unit_children_child;
CREATE INDEX unit_children_child ON unit_children (tenant, child);
ALTER TABLE unit_items DROP CONSTRAINT unit_items_pkey, ADD PRIMARY KEY (tenant, unit_id, item_id),
    ADD FOREIGN KEY (tenant, unit_id) REFERENCES units (tenant, unit_id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant, item_id) REFERENCES items (tenant, item_id) ON DELETE CASCADE;
DROP INDEX unit_items_item;
CREATE INDEX unit_items_item ON unit_items (tenant, item_id);

-- interactions: the idempotency key is unique per tenant and learner (a client's event id names
-- one learner's event), so (tenant) or (tenant, user) can distribute the table.
ALTER TABLE interactions DROP CONSTRAINT interactions_pkey, ADD PRIMARY KEY (tenant, id),
    DROP CONSTRAINT interactions_event_id_key, ADD UNIQUE (tenant, user_id, event_id),
    ADD FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id),
    ADD FOREIGN KEY (tenant, item_id) REFERENCES items (tenant, item_id);
DROP INDEX interactions_user_recent, interactions_item, interactions_occurred;
CREATE INDEX interactions_user_recent ON interactions (tenant, user_id, occurred_at DESC, id DESC)
    INCLUDE (item_id, kind, outcome, value);
CREATE INDEX interactions_item ON interactions (tenant, item_id, occurred_at);
CREATE INDEX interactions_occurred ON interactions (tenant, occurred_at);

ALTER TABLE models ADD FOREIGN KEY (tenant, unit_id) REFERENCES units (tenant, unit_id) ON DELETE CASCADE;
DROP INDEX models_one_active, models_unit;
CREATE UNIQUE INDEX models_one_active ON models (tenant, unit_id, objective, tag) WHERE status = 'active';
CREATE INDEX models_unit ON models (tenant, unit_id, objective, tag, trained_at DESC);

ALTER TABLE experiments DROP CONSTRAINT experiments_pkey, ADD PRIMARY KEY (tenant, name);

ALTER TABLE recommendation_log DROP CONSTRAINT recommendation_log_pkey, ADD PRIMARY KEY (tenant, id);
DROP INDEX recommendation_log_user_time, recommendation_log_time;
CREATE INDEX recommendation_log_user_time ON recommendation_log (tenant, user_id, created_at);
CREATE INDEX recommendation_log_time ON recommendation_log (tenant, created_at);

DROP INDEX calibration_reports_model;
CREATE INDEX calibration_reports_model ON calibration_reports (tenant, model_id, created_at DESC);

-- An operator key acts across tenants (naming one per request); every other key belongs to one.
ALTER TABLE api_keys ALTER COLUMN tenant DROP NOT NULL, ALTER COLUMN tenant DROP DEFAULT,
    ADD COLUMN operator boolean NOT NULL DEFAULT false,
    ADD CHECK (operator = (tenant IS NULL));

DROP INDEX job_runs_job;
CREATE INDEX job_runs_job ON job_runs (tenant, job, started_at DESC);

-- The catalogue version, one per tenant: a change in one tenant's catalogue empties only its
-- own cached candidate lists. Statement triggers read the changed rows (transition tables) to
-- learn which tenants changed.
DROP TRIGGER items_changed ON items;
DROP TRIGGER unit_children_changed ON unit_children;
DROP TRIGGER unit_items_changed ON unit_items;
DROP TRIGGER units_changed ON units;
DROP TABLE catalog_state;
DROP FUNCTION bump_catalog_version();
CREATE TABLE catalog_state (
    tenant   text PRIMARY KEY REFERENCES tenants (tenant) ON DELETE CASCADE,
    version  bigint NOT NULL DEFAULT 1
);
-- Versions start at the clock in microseconds (as for every tenant created later): two databases
-- sharing a Redis (a restore beside the original, test databases) never meet each other's lists.
INSERT INTO catalog_state (tenant, version)
SELECT tenant, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint FROM tenants;

-- Every tenant has its catalogue version from its first moment, however it is created (adaptrec,
-- or an INSERT in psql). The version starts at the clock in microseconds, so a tenant removed and
-- created again under the same name never meets candidate lists cached for its earlier self.
CREATE FUNCTION start_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_state (tenant, version)
    VALUES (NEW.tenant, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint)
    ON CONFLICT (tenant) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tenant_created AFTER INSERT ON tenants FOR EACH ROW EXECUTE FUNCTION start_catalog_version();

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE catalog_state SET version = version + 1;
    ELSE
        -- every tenant has its row (tenant_created, below); a tenant being deleted has none left
        UPDATE catalog_state SET version = version + 1 WHERE tenant IN (SELECT tenant FROM changed);
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['items', 'units', 'unit_children', 'unit_items'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()', t || '_inserted', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()', t || '_deleted', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()', t || '_truncated', t);
        -- a unit's name or kind does not change what is recommended (as in 003)
        IF t <> 'units' THEN
            EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed '
                           'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version()', t || '_updated', t);
        END IF;
    END LOOP;
END $$;


-- The analyst views of 002 and 005, the function of 006 and the view of 004/006, as before with
-- the tenant as their first column and every join within one tenant.
CREATE VIEW unit_paths AS
WITH RECURSIVE walk (tenant, unit_id, root_id, depth, path_ids, path_names) AS (
    -- seed: each root starts a path of its own
    SELECT u.tenant, u.unit_id, u.unit_id, 0, ARRAY[u.unit_id], ARRAY[coalesce(u.name, u.unit_id)]
    FROM units u
    WHERE NOT EXISTS (SELECT 1 FROM unit_children c WHERE c.tenant = u.tenant AND c.child = u.unit_id)
    UNION ALL
    -- step: extend every path by one child of its last unit; never onto a unit already on the
    -- path, so cycles end the walk (see 002)
    SELECT w.tenant, c.child, w.root_id, w.depth + 1, w.path_ids || c.child,
           w.path_names || coalesce(u.name, u.unit_id)
    FROM walk w
    JOIN unit_children c ON c.tenant = w.tenant AND c.parent = w.unit_id
    JOIN units u ON u.tenant = c.tenant AND u.unit_id = c.child
    WHERE NOT c.child = ANY (w.path_ids)
)
SELECT tenant, unit_id, root_id, depth, path_ids, array_to_string(path_names, ' > ') AS path
FROM walk;

COMMENT ON VIEW unit_paths IS 'Every root-to-unit path of each tenant''s unit DAG: ids as text[], names as ''A > B > C''.';

CREATE VIEW attempt_history AS
SELECT i.tenant,
       i.id,
       i.event_id,
       i.user_id,
       i.item_id,
       it.title AS item_title,
       i.outcome,                                         -- 1 correct, 0 wrong
       i.duration_ms,
       i.occurred_at,
       coalesce(p.unit_paths, '{}') AS unit_paths         -- text[] of 'A > B > C', sorted
FROM interactions i
JOIN items it ON it.tenant = i.tenant AND it.item_id = i.item_id
LEFT JOIN (
    SELECT ui.tenant, ui.item_id, array_agg(DISTINCT up.path ORDER BY up.path) AS unit_paths
    FROM unit_items ui
    JOIN unit_paths up ON up.tenant = ui.tenant AND up.unit_id = ui.unit_id
    GROUP BY ui.tenant, ui.item_id
) p ON p.tenant = i.tenant AND p.item_id = i.item_id
WHERE i.kind = 'attempt';

COMMENT ON VIEW attempt_history IS 'Attempts with tenant, user, item title, outcome, time and the item''s unit paths.';

CREATE VIEW item_stats AS
SELECT it.tenant,
       it.item_id,
       it.kind,
       it.title,
       it.active,
       coalesce(s.attempts, 0) AS attempts,
       coalesce(s.learners, 0) AS learners,
       s.success_rate,
       s.first_attempt,
       s.last_attempt,
       coalesce(s.views, 0) AS views,
       coalesce(s.likes, 0) AS likes,
       coalesce(s.completions, 0) AS completions,
       coalesce(s.users, 0) AS users
FROM items it
LEFT JOIN (
    SELECT tenant, item_id,
           count(*) FILTER (WHERE kind = 'attempt') AS attempts,
           count(DISTINCT user_id) FILTER (WHERE kind = 'attempt') AS learners,
           round(avg(outcome) FILTER (WHERE kind = 'attempt'), 4) AS success_rate,
           min(occurred_at) FILTER (WHERE kind = 'attempt') AS first_attempt,
           max(occurred_at) FILTER (WHERE kind = 'attempt') AS last_attempt,
           count(*) FILTER (WHERE kind = 'view') AS views,
           count(*) FILTER (WHERE kind = 'like') AS likes,
           count(*) FILTER (WHERE kind = 'complete') AS completions,
           count(DISTINCT user_id) AS users
    FROM interactions
    GROUP BY tenant, item_id
) s ON s.tenant = it.tenant AND s.item_id = it.item_id;

COMMENT ON VIEW item_stats IS 'Per tenant and item: attempts, learners, success rate, first/last attempt, views, likes, completions.';

CREATE VIEW user_activity AS
SELECT u.tenant,
       u.user_id,
       coalesce(s.interactions, 0) AS interactions,
       coalesce(s.attempts, 0) AS attempts,
       s.success_rate,
       coalesce(s.distinct_items, 0) AS distinct_items,
       coalesce(s.active_days, 0) AS active_days,
       s.first_seen,
       s.last_seen
FROM users u
LEFT JOIN (
    SELECT tenant, user_id,
           count(*) AS interactions,
           count(*) FILTER (WHERE kind = 'attempt') AS attempts,
           round(avg(outcome) FILTER (WHERE kind = 'attempt'), 4) AS success_rate,
           count(DISTINCT item_id) AS distinct_items,
           count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) AS active_days,
           min(occurred_at) AS first_seen,
           max(occurred_at) AS last_seen
    FROM interactions
    GROUP BY tenant, user_id
) s ON s.tenant = u.tenant AND s.user_id = u.user_id;

COMMENT ON VIEW user_activity IS 'Per tenant and user: interactions, attempts, success rate, distinct items, active days, first/last seen.';

CREATE VIEW daily_volume AS
SELECT tenant,
       (occurred_at AT TIME ZONE 'UTC')::date AS day,
       kind,
       count(*) AS interactions,
       count(DISTINCT user_id) AS users
FROM interactions
GROUP BY 1, 2, 3;

COMMENT ON VIEW daily_volume IS 'Per tenant, UTC day and kind: interactions and distinct users.';

CREATE VIEW job_status AS
SELECT r.tenant, r.run_id, r.job, r.started_at, r.finished_at,
       CASE
           WHEN r.outcome IS NOT NULL THEN r.outcome
           WHEN EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid) THEN 'running'
           ELSE 'abandoned'
       END AS state,
       extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at) AS duration_s,
       r.detail
FROM job_runs r;

-- The pairing rule of 006, unchanged, within each tenant.
CREATE FUNCTION prediction_outcomes(window_start timestamptz, window_end timestamptz, horizon interval)
RETURNS TABLE (
    tenant        text,
    log_id        bigint,
    user_id       text,
    experiment    text,
    variant       text,
    model_id      bigint,
    created_at    timestamptz,
    item_id       text,
    p             float8,
    attempted_at  timestamptz,
    outcome       smallint
)
LANGUAGE sql STABLE
AS $$
WITH shown AS (
    SELECT r.tenant, r.id AS log_id, r.user_id, r.experiment, r.variant, r.model_id, r.created_at, s.item_id,
           CASE WHEN coalesce(m.objective = 'practice', r.strategy = 'target') THEN s.score::float8 END AS p
    FROM recommendation_log r
    LEFT JOIN models m ON m.tenant = r.tenant AND m.model_id = r.model_id
    CROSS JOIN LATERAL unnest(r.item_ids, r.scores) AS s (item_id, score)
    WHERE r.created_at >= window_start AND r.created_at < window_end
),
followed AS (
    SELECT sh.*, a.occurred_at AS attempted_at, a.outcome
    FROM shown sh
    CROSS JOIN LATERAL (
        SELECT i.occurred_at, i.outcome
        FROM interactions i
        WHERE i.tenant = sh.tenant AND i.user_id = sh.user_id AND i.item_id = sh.item_id
          AND i.kind = 'attempt' AND i.outcome IS NOT NULL
          AND i.occurred_at > sh.created_at AND i.occurred_at <= sh.created_at + horizon
        ORDER BY i.occurred_at, i.id
        LIMIT 1
    ) a
)
SELECT f.tenant, f.log_id, f.user_id, f.experiment, f.variant, f.model_id, f.created_at, f.item_id, f.p,
       f.attempted_at, f.outcome
FROM followed f
WHERE NOT EXISTS (
    SELECT 1 FROM recommendation_log later
    WHERE later.tenant = f.tenant
      AND later.user_id = f.user_id
      AND later.created_at >= f.created_at
      AND (later.created_at, later.id) > (f.created_at, f.log_id)
      AND later.created_at < f.attempted_at
      AND f.item_id = ANY (later.item_ids)
)
$$;

COMMENT ON FUNCTION prediction_outcomes(timestamptz, timestamptz, interval) IS 'Recommendations logged in [window_start, window_end) whose item the learner attempted within horizon after the answer, each attempt paired with the latest answer that listed it before: tenant, answer, item, predicted p (NULL for ranking scores), outcome.';

CREATE VIEW variant_outcomes AS
WITH attempted AS (
    SELECT tenant, experiment, variant, p, outcome
    FROM prediction_outcomes('-infinity', 'infinity', interval '24 hours')
    WHERE experiment IS NOT NULL
),
answered AS (
    SELECT tenant, experiment, variant, count(DISTINCT user_id) AS learners, count(*) AS answers,
           sum(cardinality(item_ids)) AS recommended
    FROM recommendation_log
    WHERE experiment IS NOT NULL
    GROUP BY tenant, experiment, variant
),
outcomes AS (
    SELECT tenant, experiment, variant, count(*) AS attempted, avg(outcome) AS success_rate, avg(p) AS mean_p
    FROM attempted
    GROUP BY tenant, experiment, variant
),
entry AS (
    SELECT tenant, experiment, variant, user_id, min(created_at) AS first_answer
    FROM recommendation_log
    WHERE experiment IS NOT NULL
    GROUP BY tenant, experiment, variant, user_id
),
later_attempts AS (
    SELECT e.tenant, e.experiment, e.variant,
           i.occurred_at - lag(i.occurred_at) OVER (PARTITION BY e.tenant, e.experiment, e.variant, e.user_id
                                                    ORDER BY i.occurred_at, i.id) AS gap
    FROM entry e
    JOIN interactions i ON i.tenant = e.tenant AND i.user_id = e.user_id AND i.kind = 'attempt'
                       AND i.occurred_at > e.first_answer
),
sessions AS (
    SELECT tenant, experiment, variant, count(*) AS attempts,
           count(*) FILTER (WHERE gap IS NULL OR gap > interval '30 minutes') AS sessions
    FROM later_attempts
    GROUP BY tenant, experiment, variant
)
SELECT a.tenant,
       a.experiment,
       a.variant,
       a.learners,
       a.answers,
       a.recommended,
       coalesce(o.attempted, 0) AS attempted,
       round(o.success_rate, 4) AS success_rate,
       round(o.mean_p::numeric, 4) AS mean_p,
       coalesce(s.sessions, 0) AS sessions,
       round(s.attempts::numeric / nullif(s.sessions, 0), 4) AS attempts_per_session
FROM answered a
LEFT JOIN outcomes o USING (tenant, experiment, variant)
LEFT JOIN sessions s USING (tenant, experiment, variant);

COMMENT ON VIEW variant_outcomes IS 'Per tenant, experiment and variant: learners, answers, recommended items attempted within 24 h (each attempt once), their success rate and mean predicted p, attempts per 30-minute-gap session.';
COMMENT ON VIEW job_status IS 'Every job run (per tenant) with its state: running, abandoned, succeeded, failed or skipped.';
