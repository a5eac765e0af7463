-- A learner's history and event ingest.

-- name: recent_history
-- The user :user_id's most recent :limit interactions over the items :item_ids, newest first.
SELECT i.item_id, i.kind, i.outcome, i.value, i.occurred_at
FROM interactions i
WHERE i.tenant = :tenant AND i.user_id = :user_id
  AND i.item_id = ANY(:item_ids)
ORDER BY i.occurred_at DESC, i.id DESC
LIMIT :limit;

-- name: insert_interactions
-- Store events of tenant :tenant from parallel arrays; an event_id the learner already has is skipped (idempotent ingest).
-- In event_id order (then position: the first of a repeated id wins), so concurrent retries of
-- overlapping batches take their index locks in one order and cannot deadlock.
INSERT INTO interactions (tenant, event_id, user_id, item_id, kind, outcome, value, duration_ms, response, occurred_at)
SELECT :tenant, e, u, i, k, o, v, d, r::jsonb, t
FROM unnest(:event_ids::text[], :user_ids::text[], :item_ids::text[], :kinds::text[],
            :outcomes::smallint[], :vals::real[], :durations::int[], :responses::text[],
            :occurred::timestamptz[]) WITH ORDINALITY AS x(e, u, i, k, o, v, d, r, t, n)
ORDER BY e, n
ON CONFLICT (tenant, user_id, event_id) DO NOTHING
RETURNING user_id, event_id;
