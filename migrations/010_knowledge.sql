-- 010: what learners know, for analysts (issue 26): a snapshot of every learner's knowledge per
-- unit, written each night by `adaptrec knowledge snapshot` (run by `adaptrec train --all` after
-- training: jobs/knowledge.py), and a view of mastery per unit and cohort over it. sql/README.md
-- shows how to query them.

-- One row per learner, unit and snapshot: what GET /v1/users/{user_id}/knowledge answered for the
-- learner's practised units (the units holding an item they attempted) at `as_of`. It grows with
-- learners, so it is keyed like users and interactions, (tenant, user_id, ...): it can be
-- distributed by user_id alongside them (app/distribution.py). No foreign key to units: a
-- snapshot is history and outlives a unit removed since.
CREATE TABLE knowledge_snapshots (
    tenant          text NOT NULL,
    user_id         text NOT NULL,
    unit_id         text NOT NULL,
    as_of           timestamptz NOT NULL,
    p               real CHECK (p BETWEEN 0 AND 1),   -- p(correct) on the unit's typical item; null: no model
    low             real CHECK (low BETWEEN 0 AND 1),  -- the 90 % credible interval
    high            real CHECK (high BETWEEN 0 AND 1),
    mastered        boolean NOT NULL,                  -- low >= the unit's mastery threshold
    attempts        integer NOT NULL CHECK (attempts >= 0),
    correct         integer NOT NULL CHECK (correct >= 0),
    last_practised  timestamptz,
    due             timestamptz,                       -- when p falls (fell) below the review threshold
    PRIMARY KEY (tenant, user_id, unit_id, as_of),
    FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id) ON DELETE CASCADE
);
-- Analysts ask per unit and snapshot (the view below), not per learner.
CREATE INDEX knowledge_snapshots_unit ON knowledge_snapshots (tenant, unit_id, as_of);
COMMENT ON TABLE knowledge_snapshots IS 'Each learner''s knowledge of their practised units, one row per snapshot (adaptrec knowledge snapshot, nightly).';

-- Mastery per unit and snapshot: over all its learners (cohort '(all)') and per cohort, the
-- learner's users.attrs "cohort" (else "group"; '(none)' without either).
CREATE VIEW unit_mastery AS
SELECT k.tenant, k.unit_id, k.as_of,
       CASE WHEN grouping(c.cohort) = 1 THEN '(all)' ELSE c.cohort END AS cohort,
       count(*) AS learners,
       count(*) FILTER (WHERE k.mastered) AS mastered,
       round(avg(k.mastered::int), 4) AS mastered_share,
       round(avg(k.p)::numeric, 4) AS mean_p,
       count(*) FILTER (WHERE k.due <= k.as_of) AS due,
       sum(k.attempts) AS attempts
FROM knowledge_snapshots k
JOIN users u ON u.tenant = k.tenant AND u.user_id = k.user_id
CROSS JOIN LATERAL (SELECT coalesce(u.attrs ->> 'cohort', u.attrs ->> 'group', '(none)') AS cohort) c
GROUP BY GROUPING SETS ((k.tenant, k.unit_id, k.as_of), (k.tenant, k.unit_id, k.as_of, c.cohort));
COMMENT ON VIEW unit_mastery IS 'Learners, mastered and due per unit and snapshot, in all (cohort ''(all)'') and per users.attrs cohort (else group).';
