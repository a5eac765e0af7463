-- Tenants (migration 007): `adaptrec tenants`, the Totara import, the API's tenant check.

-- name: list_tenants
-- Every tenant with what it holds (the counts use the tenant-leading indexes).
SELECT t.tenant, t.name, t.settings, t.created_at,
       (SELECT count(*) FROM users u WHERE u.tenant = t.tenant) AS users,
       (SELECT count(*) FROM items i WHERE i.tenant = t.tenant) AS items,
       (SELECT count(*) FROM interactions i WHERE i.tenant = t.tenant) AS interactions,
       (SELECT count(*) FROM models m WHERE m.tenant = t.tenant AND m.status = 'active') AS active_models
FROM tenants t
ORDER BY t.tenant;

-- name: get_tenant
-- One tenant's row.
SELECT tenant, name, settings, created_at FROM tenants WHERE tenant = :tenant;

-- name: tenant_names
-- The names of all tenants.
SELECT tenant FROM tenants ORDER BY tenant;

-- name: ensure_tenant
-- Create tenant :tenant unless it exists (its catalogue version comes with it: migration 007's trigger); a row when created.
INSERT INTO tenants (tenant, name) VALUES (:tenant, :display_name)
ON CONFLICT (tenant) DO NOTHING
RETURNING tenant;

-- name: set_tenant_settings
-- Merge :settings (JSON) into the tenant's settings.
UPDATE tenants SET settings = settings || :settings::jsonb WHERE tenant = :tenant RETURNING settings;

-- name: tenant_counts
-- What removing tenant :tenant deletes, table by table.
SELECT (SELECT count(*) FROM users WHERE tenant = :tenant) AS users,
       (SELECT count(*) FROM items WHERE tenant = :tenant) AS items,
       (SELECT count(*) FROM units WHERE tenant = :tenant) AS units,
       (SELECT count(*) FROM interactions WHERE tenant = :tenant) AS interactions,
       (SELECT count(*) FROM models WHERE tenant = :tenant) AS models,
       (SELECT count(*) FROM experiments WHERE tenant = :tenant) AS experiments,
       (SELECT count(*) FROM recommendation_log WHERE tenant = :tenant) AS logged_answers,
       (SELECT count(*) FROM api_keys WHERE tenant = :tenant) AS api_keys,
       (SELECT count(*) FROM job_runs WHERE tenant = :tenant) AS job_runs;

-- name: delete_tenant
-- Delete tenant :tenant and, through the foreign keys' ON DELETE CASCADE, every row of it in every table.
DELETE FROM tenants WHERE tenant = :tenant;

-- name: tenant_size
-- Users with any interaction, and items, of tenant :tenant (Totara's minimum for a model).
SELECT (SELECT count(DISTINCT user_id) FROM interactions WHERE tenant = :tenant) AS users,
       (SELECT count(*) FROM items WHERE tenant = :tenant) AS items;

-- name: totara_health
-- Per Totara tenant: settings, users with interactions, items, those of a Totara component (:components, the kinds
-- /user-items can be asked for), and the age of its newest active model (Totara's health check).
SELECT t.tenant, t.settings,
       (SELECT count(DISTINCT user_id) FROM interactions i WHERE i.tenant = t.tenant) AS users,
       (SELECT count(*) FROM items i WHERE i.tenant = t.tenant) AS items,
       (SELECT count(*) FROM items i WHERE i.tenant = t.tenant AND i.kind = ANY(:components)) AS component_items,
       (SELECT extract(epoch FROM now() - max(m.trained_at)) FROM models m
         WHERE m.tenant = t.tenant AND m.status = 'active') AS model_age_s
FROM tenants t
WHERE (t.settings ->> 'totara')::boolean   -- the tenants Totara's export filled, not a platform's own
ORDER BY t.tenant;

-- name: totara_components
-- The items of tenant :tenant: how many, how many of a Totara component (:components), and the first few ids
-- of those without one (what the Totara import and /user-items say about a tenant Totara could not be answered for).
SELECT count(*) AS items,
       count(*) FILTER (WHERE kind = ANY(:components)) AS component_items,
       (array_agg(item_id ORDER BY item_id) FILTER (WHERE NOT kind = ANY(:components)))[1:3] AS without
FROM items WHERE tenant = :tenant;

-- name: tenant_user_ids
-- Every user of tenant :tenant, with or without interactions (the legacy Totara export's users: those
-- /user-items answers from their history, their metadata or popularity).
SELECT user_id FROM users WHERE tenant = :tenant ORDER BY user_id;
