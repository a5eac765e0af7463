-- What `adaptrec serve` (cli/serve.py) asks before it starts gunicorn. The caller owns the transaction.

-- name: database_is_empty
-- True when there are neither items nor interactions: `serve --demo-if-empty` then loads the demo.
SELECT NOT EXISTS (SELECT 1 FROM items WHERE tenant = :tenant)
   AND NOT EXISTS (SELECT 1 FROM interactions WHERE tenant = :tenant) AS empty;

-- name: no_active_models
-- True when no model is active: `serve --demo-if-empty` then trains the largest units.
SELECT NOT EXISTS (SELECT 1 FROM models WHERE tenant = :tenant AND status = 'active') AS none_active;

-- name: sample_ids
-- Ids for the printed curl examples: the most active learner, and a section (else a top unit).
-- A section is small enough for a quick answer; a catalogue without sections still gets a unit.
SELECT (SELECT user_id FROM interactions WHERE tenant = :tenant GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1) AS user_id,
       coalesce((SELECT unit_id FROM units WHERE tenant = :tenant AND kind = 'section' ORDER BY unit_id LIMIT 1),
                (SELECT u.unit_id FROM units u
                  WHERE u.tenant = :tenant
                    AND NOT EXISTS (SELECT 1 FROM unit_children c WHERE c.tenant = u.tenant AND c.child = u.unit_id)
                  ORDER BY u.unit_id LIMIT 1)) AS unit_id;
