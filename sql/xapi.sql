-- xAPI statements in (migration 012): app/catalogue/xapi_ingest.py.

-- name: known_statements
-- The statements :statement_ids of the learners :user_ids tenant :tenant has received, with their digests.
-- (Pairs are matched by the caller; = ANY on user_id lets a sharded table visit only these learners' shards.)
SELECT user_id, statement_id::text AS statement_id, digest
FROM xapi_statements
WHERE tenant = :tenant AND user_id = ANY(:user_ids::text[]) AND statement_id = ANY(:statement_ids::uuid[]);

-- name: insert_statements
-- Record statements from parallel arrays (statement JSON text only for unmappable ones); returns the new ones (one already there is skipped).
-- In (user, id) order, so concurrent batches take their index locks in one order.
INSERT INTO xapi_statements (tenant, user_id, statement_id, digest, verb, activity_id, item_id, reason, detail,
                             statement)
SELECT :tenant, u, id, d, v, a, i, r, dt, s::jsonb
FROM unnest(:user_ids::text[], :statement_ids::uuid[], :digests::text[], :verbs::text[], :activity_ids::text[],
            :item_ids::text[], :reasons::text[], :details::text[], :statements::text[])
     AS x(u, id, d, v, a, i, r, dt, s)
ORDER BY u, id
ON CONFLICT (tenant, user_id, statement_id) DO NOTHING
RETURNING user_id, statement_id::text AS statement_id;

-- name: activity_items
-- The items the activities :iris are recorded on in tenant :tenant (the activity map).
SELECT activity_id AS iri, item_id FROM xapi_activities WHERE tenant = :tenant AND activity_id = ANY(:iris);

-- name: items_named_as_activities
-- Which of the activities :iris are, in tenant :tenant, the ids of items (a platform that names items by their IRIs).
SELECT item_id AS iri, item_id FROM items WHERE tenant = :tenant AND item_id = ANY(:iris);

-- name: insert_activity_items
-- Map activities :iris to items :item_ids (parallel arrays) in tenant :tenant; a mapped activity keeps its item.
INSERT INTO xapi_activities (tenant, activity_id, item_id)
SELECT :tenant, a, i FROM unnest(:iris::text[], :item_ids::text[]) AS x(a, i)
ORDER BY a
ON CONFLICT (tenant, activity_id) DO NOTHING;

-- name: insert_new_items
-- Create items (parallel arrays) in tenant :tenant unless they exist: an existing item is never changed.
INSERT INTO items (tenant, item_id, kind, title, attrs)
SELECT :tenant, i, k, t, a::jsonb FROM unnest(:item_ids::text[], :kinds::text[], :titles::text[], :attrs::text[])
     AS x(i, k, t, a)
ORDER BY i
ON CONFLICT (tenant, item_id) DO NOTHING;

-- name: insert_new_units
-- Create units (parallel arrays) in tenant :tenant unless they exist: an existing unit is never changed.
INSERT INTO units (tenant, unit_id, name, kind, attrs)
SELECT :tenant, u, n, k, a::jsonb FROM unnest(:unit_ids::text[], :names::text[], :kinds::text[], :attrs::text[])
     AS x(u, n, k, a)
ORDER BY u
ON CONFLICT (tenant, unit_id) DO NOTHING;

-- name: add_unit_items
-- Add items to units from parallel arrays :unit_ids, :item_ids in tenant :tenant (links only added).
INSERT INTO unit_items (tenant, unit_id, item_id)
SELECT :tenant, u, i FROM unnest(:unit_ids::text[], :item_ids::text[]) AS x(u, i)
ON CONFLICT DO NOTHING;

-- name: xapi_unmappable_count
-- How many statements tenant :tenant kept unmappable, in all and since :since (the dashboard's overview).
SELECT count(*) AS total, count(*) FILTER (WHERE received_at >= :since) AS recent
FROM xapi_statements
WHERE tenant = :tenant AND reason IS NOT NULL;
