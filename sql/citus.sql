-- Distributing adaptrec's schema on Citus (docs/SCALING.md). Run once, on the coordinator, as a
-- superuser, after `adaptrec db migrate` has created the schema there and before traffic moves:
--     psql "$ADAPTREC_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/citus.sql
-- Not a named-query file (no `-- name:` blocks): app.infra.queries does not load it.
--
-- The classes are those of harness/distribution.py, which tests/service/test_distribution.py checks against
-- the live schema: the tables that grow with learners are distributed by user_id and co-located
-- (a learner's profile, events and answers on one node); every other table is small and becomes
-- a reference table (a copy on every node). schema_migrations stays on the coordinator.

CREATE EXTENSION IF NOT EXISTS citus;

-- Reference tables first: the distributed tables' foreign keys point at them. Parents before
-- children (tenants, then what references tenants, ...).
SELECT create_reference_table('tenants');
SELECT create_reference_table('items');
SELECT create_reference_table('units');
SELECT create_reference_table('unit_children');
SELECT create_reference_table('unit_items');
SELECT create_reference_table('catalog_state');
SELECT create_reference_table('models');
SELECT create_reference_table('model_arrays');
SELECT create_reference_table('experiments');
SELECT create_reference_table('calibration_reports');
SELECT create_reference_table('api_keys');
SELECT create_reference_table('job_runs');
SELECT create_reference_table('dashboard_sessions');
SELECT create_reference_table('request_rollup');
SELECT create_reference_table('xapi_activities');   -- migration 012: activity IRI -> item

-- The big tables, co-located by learner. users first: interactions' foreign key joins on it.
SELECT create_distributed_table('users', 'user_id');
SELECT create_distributed_table('interactions', 'user_id', colocate_with => 'users');
-- Partitioned by month (migration 009): Citus distributes the parent and every partition, and
-- partitions created later by `adaptrec db log-retention` / the daily job follow.
SELECT create_distributed_table('recommendation_log', 'user_id', colocate_with => 'users');
-- The nightly knowledge snapshot (migration 010), one learner's rows with their events.
SELECT create_distributed_table('knowledge_snapshots', 'user_id', colocate_with => 'users');
-- xAPI statements received (migration 012), keyed by the learner like their interactions.
SELECT create_distributed_table('xapi_statements', 'user_id', colocate_with => 'users');
