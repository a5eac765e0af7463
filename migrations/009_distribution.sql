-- 009: keys that let the big tables be sharded (issue 15), and the recommendation log by month.
--
-- Distribution: the tables that grow with learners (users, interactions, recommendation_log) are
-- keyed by (tenant, user_id) and can be distributed by user_id (Citus `create_distributed_table`,
-- co-located); every other table is small and can be a reference table (sql/citus.sql,
-- docs/SCALING.md). For that, every primary key and unique constraint of a big table includes
-- user_id, and no small table has a foreign key into a big one. app/distribution.py names the
-- classes and tests/test_distribution.py checks the live catalogue against them.

-- interactions: the idempotency key was already (tenant, user_id, event_id); the row id now
-- belongs to its learner too.
ALTER TABLE interactions DROP CONSTRAINT interactions_pkey, ADD PRIMARY KEY (tenant, user_id, id);

-- The recommendation log, partitioned by month of created_at: an operator drops a month in one
-- statement (ADAPTREC_LOG_RETENTION_DAYS, the daily job) instead of deleting billions of rows.
-- The key includes the partition column (Postgres requires it) and user_id (Citus does); the old
-- (tenant, user_id, created_at) index is its prefix.
CREATE TABLE recommendation_log_by_month (
    LIKE recommendation_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS,
    PRIMARY KEY (tenant, user_id, created_at, id),
    FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE
) PARTITION BY RANGE (created_at);
-- Rows of a month without its partition (the daily job creates them ahead) land here; creating
-- that month's partition later moves them (recommendation_log_add_month).
CREATE TABLE recommendation_log_default PARTITION OF recommendation_log_by_month DEFAULT;
CREATE INDEX recommendation_log_time_m ON recommendation_log_by_month (tenant, created_at);

-- One month's partition, named recommendation_log_yYYYYmMM; rows of that month already in the
-- default partition move into it. Returns the partition's name; nothing happens if it exists.
CREATE FUNCTION recommendation_log_add_month(month date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    next date := (date_trunc('month', month) + interval '1 month')::date;
    part text := format('recommendation_log_y%sm%s', to_char(first, 'YYYY'), to_char(first, 'MM'));
    parent regclass := (SELECT i.inhparent FROM pg_inherits i
                        WHERE i.inhrelid = 'recommendation_log_default'::regclass);
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    IF EXISTS (SELECT 1 FROM recommendation_log_default WHERE created_at >= first AND created_at < next) THEN
        -- Postgres refuses a partition whose rows sit in the default one: move them through it.
        EXECUTE format('ALTER TABLE %s DETACH PARTITION recommendation_log_default', parent);
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', part, parent, first, next);
        EXECUTE format('INSERT INTO %I SELECT * FROM recommendation_log_default WHERE created_at >= %L AND created_at < %L',
                       part, first, next);
        DELETE FROM recommendation_log_default WHERE created_at >= first AND created_at < next;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION recommendation_log_default DEFAULT', parent);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', part, parent, first, next);
    END IF;
    RETURN part;
END $$;
COMMENT ON FUNCTION recommendation_log_add_month(date) IS 'Create the recommendation log''s partition for the month of the date (moving its rows out of the default partition); returns its name.';

-- Partitions for every month that has rows, and this month and the next three.
SELECT recommendation_log_add_month(m::date)
FROM generate_series(date_trunc('month', coalesce((SELECT min(created_at) FROM recommendation_log), now())),
                     date_trunc('month', now()) + interval '3 months', interval '1 month') AS m;

INSERT INTO recommendation_log_by_month SELECT * FROM recommendation_log;
ALTER SEQUENCE recommendation_log_id_seq OWNED BY recommendation_log_by_month.id;

-- Swap the tables; views on the log (variant_outcomes) are re-created on the new one from their own
-- definitions, comments kept.
CREATE TEMPORARY TABLE log_views ON COMMIT DROP AS
SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS definition,
       obj_description(v.oid, 'pg_class') AS comment
FROM pg_depend d
JOIN pg_rewrite rw ON rw.oid = d.objid
JOIN pg_class v ON v.oid = rw.ev_class
WHERE d.refobjid = 'recommendation_log'::regclass AND v.oid <> 'recommendation_log'::regclass;
ALTER TABLE recommendation_log RENAME TO recommendation_log_unpartitioned;
ALTER TABLE recommendation_log_by_month RENAME TO recommendation_log;
ALTER INDEX recommendation_log_time_m RENAME TO recommendation_log_time_by_month;
DO $$
DECLARE v record;
BEGIN
    FOR v IN SELECT * FROM log_views LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name, v.definition);
        EXECUTE format('COMMENT ON VIEW %s IS %L', v.name, v.comment);
    END LOOP;
END $$;
DROP TABLE recommendation_log_unpartitioned;
ALTER INDEX recommendation_log_time_by_month RENAME TO recommendation_log_time;
ALTER INDEX recommendation_log_by_month_pkey RENAME TO recommendation_log_pkey;
ALTER TABLE recommendation_log RENAME CONSTRAINT recommendation_log_by_month_tenant_fkey TO recommendation_log_tenant_fkey;

-- The retention step of the daily job: drop every month partition that ends on or before
-- :cutoff, and delete older rows still in the default partition. Returns the dropped names.
CREATE FUNCTION recommendation_log_drop_before(cutoff timestamptz) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE p record;
BEGIN
    FOR p IN
        SELECT c.relname, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'recommendation_log'::regclass AND c.relname <> 'recommendation_log_default'
        ORDER BY 2
    LOOP
        IF p.upper <= cutoff THEN
            EXECUTE format('DROP TABLE %I', p.relname);
            RETURN NEXT p.relname;
        END IF;
    END LOOP;
    DELETE FROM recommendation_log_default WHERE created_at < cutoff;
END $$;
COMMENT ON FUNCTION recommendation_log_drop_before(timestamptz) IS 'Drop the recommendation log''s month partitions that end on or before the cutoff (and older rows of the default partition); returns their names.';
