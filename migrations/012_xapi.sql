-- 012: xAPI statements in (issue 28). POST/PUT /xapi/statements and `adaptrec import --format xapi`
-- map each statement to an interaction (docs/XAPI.md); these tables remember which statements were
-- received, so a resent one is stored once and one re-using an id with other content is a 409, and
-- keep the statements that could not be mapped, with the reason, for analysts.

-- One row per statement received. It grows with statements, so it is keyed like interactions,
-- (tenant, user_id, ...), and can be distributed by user_id beside them (harness/distribution.py):
-- user_id is the learner the tenant's actor rule names (for a statement that names no usable user,
-- the key app/xapi/mapping.py: learner_key gives). A mapped statement is the interaction of the same
-- tenant, user and event_id (= statement_id); only an unmappable one keeps its whole statement.
CREATE TABLE xapi_statements (
    tenant        text NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,
    user_id       text NOT NULL,
    statement_id  uuid NOT NULL,
    digest        text NOT NULL,          -- SHA-256 of the statement without id/stored/authority/version
    verb          text NOT NULL,
    activity_id   text,                   -- the object's IRI when it is an Activity
    item_id       text,                   -- the item it was recorded on (mapped statements)
    reason        text,                   -- null: mapped; else why not (app/xapi/mapping.py: REASONS)
    detail        text,                   -- the reason in words
    statement     jsonb,                  -- the statement, for unmappable ones only
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, user_id, statement_id),
    CHECK ((reason IS NULL) = (statement IS NULL))
);
-- The unmappable ones, newest first: the analysts' view, the dashboard's count.
CREATE INDEX xapi_statements_unmappable ON xapi_statements (tenant, received_at DESC) WHERE reason IS NOT NULL;
COMMENT ON TABLE xapi_statements IS 'Every xAPI statement received (idempotency by statement id); unmappable ones kept whole with the reason.';

-- Activity IRI -> item, per tenant: filled when an activity is created as an item on first sight,
-- or by the operator to map activities onto existing items (docs/XAPI.md). Small: a reference table.
CREATE TABLE xapi_activities (
    tenant       text NOT NULL,
    activity_id  text NOT NULL CHECK (length(activity_id) BETWEEN 1 AND 4096),
    item_id      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, activity_id),
    FOREIGN KEY (tenant, item_id) REFERENCES items (tenant, item_id) ON DELETE CASCADE
);
COMMENT ON TABLE xapi_activities IS 'Which item an xAPI activity IRI is recorded on, per tenant.';

-- For analysts: the statements accepted but not mapped to an interaction, with why, newest first.
CREATE VIEW xapi_unmappable AS
SELECT tenant, statement_id, user_id AS learner, verb, activity_id, reason, detail, received_at,
       statement ->> 'timestamp' AS timestamp, statement
FROM xapi_statements
WHERE reason IS NOT NULL;
COMMENT ON VIEW xapi_unmappable IS 'xAPI statements accepted but not recorded as interactions, with the reason (docs/XAPI.md).';
