-- 008: the dashboard (/dashboard, issue 14): a read-only `dashboard` scope for keys, the
-- dashboard's sign-in sessions, and a rollup of the request metrics so the overview can show
-- the last hour and day.

ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check,
    ADD CONSTRAINT api_keys_scopes_check
    CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['serve', 'ingest', 'admin', 'dashboard']);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so this table
-- cannot be used to sign in. key_check = SHA-256 of the token and the key's own hash: a session
-- ends as soon as its key is revoked or (for a bootstrap key) replaced, without storing anything
-- from which the key could be guessed.
CREATE TABLE dashboard_sessions (
    token_hash   text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    key_id       text NOT NULL,                 -- api_keys.key_id, or env-N for a bootstrap key
    key_name     text NOT NULL,
    key_check    text NOT NULL,
    scopes       text[] NOT NULL,
    key_tenant   text REFERENCES tenants (tenant) ON DELETE CASCADE,   -- NULL: an operator key
    tenant       text NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,  -- the tenant on view
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (key_tenant IS NULL OR key_tenant = tenant)   -- a tenant's key never looks at another tenant
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);

-- The request metrics over time. Each serving process tree (`source`: host and gunicorn master)
-- writes the cumulative totals of its Prometheus request histogram once a minute (a thread in each
-- worker; both workers read the same multiprocess files and the first insert of the minute wins).
-- The API's request path records nothing new: it only increments the histogram it always did.
-- A window's figures are the difference of two snapshots per source (counters never go down
-- within one source: a new gunicorn master is a new source).
CREATE TABLE request_rollup (
    source     text NOT NULL,
    taken_at   timestamptz NOT NULL,       -- the minute the snapshot belongs to
    overall    jsonb NOT NULL,             -- {"le": [...], "buckets": [...], "count", "errors", "client_errors", "sum"}
    endpoints  jsonb NOT NULL,             -- {"METHOD /route": [count, errors, seconds]}
    PRIMARY KEY (source, taken_at)
);
CREATE INDEX request_rollup_time ON request_rollup (taken_at) INCLUDE (source);   -- the sources of a window, from the index alone
