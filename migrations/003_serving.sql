-- 003: what the request path needs beyond the core schema.

-- A catalogue version, bumped by any change to items or the unit hierarchy (from the API, an
-- import or psql alike). Cached candidate lists are keyed by it, so a change invalidates them
-- without every writer having to remember to.
CREATE TABLE catalog_state (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL DEFAULT 1
);
INSERT INTO catalog_state DEFAULT VALUES;

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_state SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER items_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER unit_children_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON unit_children
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER unit_items_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON unit_items
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER units_changed AFTER INSERT OR DELETE OR TRUNCATE ON units
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

-- Calibration monitoring (adaptrec calibrate): predicted vs observed per bucket, per model and
-- variant, for a window of logged recommendations.
CREATE TABLE calibration_reports (
    id            bigserial PRIMARY KEY,
    model_id      bigint,
    variant       text,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    n             integer NOT NULL,
    ece           real,
    buckets       jsonb NOT NULL,   -- [{lower, upper, n, predicted, observed}]
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calibration_reports_model ON calibration_reports (model_id, created_at DESC);
