-- The migration runner's own bookkeeping (app/infra/migrations.py): which migrations/NNN_name.sql files
-- are applied, with the checksum they had then. The runner owns the transactions.

-- name: create_schema_migrations
-- The bookkeeping table; the one table no migration creates, since it records them.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: schema_migrations_exists
-- Whether the bookkeeping table exists (`adaptrec db status` on a new database must not create it).
SELECT to_regclass('schema_migrations') IS NOT NULL AS present;

-- name: applied_migrations
-- Every applied migration, in order.
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version;

-- name: record_migration
-- Record migration :version as applied, in the transaction that applied it.
INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :migration_name, :checksum);
