-- 005: what operating the service needs: API keys with scopes, and a record of every job run.

-- API keys created with `adaptrec keys add`. The key itself is shown once and never stored:
-- only its SHA-256 (keys are 256-bit random tokens, so a plain hash cannot be guessed back).
-- key_id is the public part of the key (ar_<key_id>_<secret>), used to find the row and in logs.
CREATE TABLE api_keys (
    key_id            text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes            text[] NOT NULL
                      CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['serve', 'ingest', 'admin']),
    key_hash          text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    rate_limit_per_s  integer CHECK (rate_limit_per_s > 0),   -- NULL: ADAPTREC_RATE_LIMIT_PER_S
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);

-- One row per run of a daily job (train, calibrate) or an import. outcome stays NULL while the
-- run is in progress; backend_pid is the Postgres session the run holds open for its whole life,
-- so a run whose process was killed shows as 'abandoned' (its session is gone) in job_status.
CREATE TABLE job_runs (
    run_id       bigserial PRIMARY KEY,
    job          text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('succeeded', 'failed', 'skipped')),
    backend_pid  integer,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX job_runs_job ON job_runs (job, started_at DESC);

-- Every run with its state: running, abandoned (killed: no outcome and its session is gone),
-- succeeded, failed or skipped (another run held the lock). For analysts, operators and /metrics.
CREATE VIEW job_status AS
SELECT r.run_id, r.job, r.started_at, r.finished_at,
       CASE
           WHEN r.outcome IS NOT NULL THEN r.outcome
           WHEN EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid) THEN 'running'
           ELSE 'abandoned'
       END AS state,
       extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at) AS duration_s,
       r.detail
FROM job_runs r;
