-- API keys and job runs (migration 005). The caller owns the transaction.

-- name: api_key_by_id
-- The key row for an id from a presented key (revoked keys included: the caller refuses them).
SELECT key_id, name, scopes, key_hash, rate_limit_per_s, revoked_at, tenant, operator
FROM api_keys
WHERE key_id = :key_id;

-- name: insert_api_key
-- A new key (the hash only; the key itself is never stored).
INSERT INTO api_keys (key_id, name, scopes, key_hash, rate_limit_per_s, tenant, operator)
VALUES (:key_id, :key_name, :scopes, :key_hash, :rate_limit_per_s, :tenant, :tenant IS NULL);

-- name: revoke_api_key
-- Revoke a key; its holders get 401 once the workers' key cache expires (seconds).
UPDATE api_keys SET revoked_at = now()
WHERE key_id = :key_id AND revoked_at IS NULL;

-- name: list_api_keys
-- Every key, newest first, without hashes.
SELECT key_id, name, coalesce(tenant, '*') AS tenant, scopes, rate_limit_per_s, created_at, revoked_at
FROM api_keys
ORDER BY created_at DESC, key_id;

-- name: start_job_run
-- Record the start of a job run held by this session (backend_pid tells running from abandoned).
INSERT INTO job_runs (tenant, job, backend_pid, detail)
VALUES (:tenant, :job, pg_backend_pid(), :detail)
RETURNING run_id;

-- name: finish_job_run
-- Record how a job run ended.
UPDATE job_runs SET finished_at = now(), outcome = :outcome, detail = detail || :detail
WHERE run_id = :run_id;

-- name: job_metrics
-- Per job (over all tenants): runs by state, and the duration and end of the last finished run, for /metrics.
WITH last_finished AS (
    SELECT DISTINCT ON (job) job, state, duration_s, finished_at
    FROM job_status
    WHERE finished_at IS NOT NULL
    ORDER BY job, finished_at DESC
)
SELECT s.job, s.state, count(*) AS runs,
       l.state AS last_state, l.duration_s AS last_duration_s,
       extract(epoch FROM l.finished_at) AS last_finished_at,
       (SELECT extract(epoch FROM max(finished_at)) FROM job_runs j
         WHERE j.job = s.job AND j.outcome = 'succeeded') AS last_success_at
FROM job_status s
LEFT JOIN last_finished l ON l.job = s.job
GROUP BY s.job, s.state, l.state, l.duration_s, l.finished_at
ORDER BY s.job, s.state;

-- name: active_model_metrics
-- Active models per tenant, unit, objective and tag with their age, for /metrics.
SELECT tenant, unit_id, objective, tag, model_id, extract(epoch FROM now() - trained_at) AS age_s
FROM models
WHERE status = 'active'
ORDER BY tenant, unit_id, objective, tag;

-- name: log_add_month
-- Create the recommendation log's partition for the month of :month (migration 009); its name.
SELECT recommendation_log_add_month(:month::date) AS partition;

-- name: log_drop_before
-- Drop the recommendation log's months that end on or before :cutoff (and older rows of its
-- default partition); the dropped partitions' names.
SELECT recommendation_log_drop_before(:cutoff) AS partition;
