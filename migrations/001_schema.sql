-- 001: the core schema. Content (users, items, a DAG of units), every interaction, trained
-- models with their packed arrays, experiments, and the log of every answer.

CREATE TABLE users (
    user_id     text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 256),
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    item_id     text PRIMARY KEY CHECK (length(item_id) BETWEEN 1 AND 256),
    kind        text NOT NULL DEFAULT 'question',   -- question, video, article, course, movie, ...
    title       text,
    body        text,                               -- free text (Totara's "document"), for TF-IDF
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb, -- metadata: topics, difficulty label, ...
    active      boolean NOT NULL DEFAULT true,      -- inactive items are never recommended
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE units (
    unit_id     text PRIMARY KEY CHECK (length(unit_id) BETWEEN 1 AND 256),
    name        text,
    kind        text NOT NULL DEFAULT 'unit',       -- subject, chapter, section, skill, genre, ...
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The unit hierarchy is a DAG (a section may sit in two chapters). Queries over it guard
-- against cycles anyway, because imports can bring them in.
CREATE TABLE unit_children (
    parent  text NOT NULL REFERENCES units (unit_id) ON DELETE CASCADE,
    child   text NOT NULL REFERENCES units (unit_id) ON DELETE CASCADE,
    PRIMARY KEY (parent, child),
    CHECK (parent <> child)
);
CREATE INDEX unit_children_child ON unit_children (child);   -- walking up: parents of a unit

CREATE TABLE unit_items (
    unit_id   text NOT NULL REFERENCES units (unit_id) ON DELETE CASCADE,
    item_id   text NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    position  integer,
    PRIMARY KEY (unit_id, item_id)                            -- hot path: items under units
);
CREATE INDEX unit_items_item ON unit_items (item_id);         -- units an item belongs to

CREATE TABLE interactions (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 256),  -- idempotency key
    user_id      text NOT NULL REFERENCES users (user_id),
    item_id      text NOT NULL REFERENCES items (item_id),
    kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),  -- attempt, view, like, complete, rating, ...
    outcome      smallint CHECK (outcome IN (0, 1)),   -- attempts: 1 correct; engagement: 1 positive
    value        real,                                 -- rating, Totara's 0/1 strength, score
    duration_ms  integer CHECK (duration_ms >= 0),
    response     jsonb,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
-- Hot path: a user's recent history (then filtered to the model's items). The INCLUDE columns
-- let the request path answer from the index alone.
CREATE INDEX interactions_user_recent ON interactions (user_id, occurred_at DESC, id DESC)
    INCLUDE (item_id, kind, outcome, value);
CREATE INDEX interactions_item ON interactions (item_id, occurred_at);   -- per-item stats, trending
CREATE INDEX interactions_occurred ON interactions (occurred_at);        -- daily volume, training windows

-- A trained model of one unit. At most one active model per (unit, objective, tag): a unit can
-- have a practice model (p(correct) of attempts) and an engagement model (top-N) side by side.
-- Activation swaps statuses in one transaction, so readers always see exactly one.
CREATE TABLE models (
    model_id          bigserial PRIMARY KEY,
    unit_id           text NOT NULL REFERENCES units (unit_id) ON DELETE CASCADE,
    tag               text NOT NULL DEFAULT 'default',
    algorithm         text NOT NULL DEFAULT 'lightfm',
    objective         text NOT NULL CHECK (objective IN ('practice', 'engagement')),
    mode              text NOT NULL CHECK (mode IN ('mf', 'partial', 'full')),
    status            text NOT NULL DEFAULT 'training'
                      CHECK (status IN ('training', 'ready', 'active', 'retired', 'failed')),
    hyperparams       jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics           jsonb NOT NULL DEFAULT '{}'::jsonb,
    data_counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    training_seconds  real,
    trained_at        timestamptz NOT NULL DEFAULT now(),
    activated_at      timestamptz
);
CREATE UNIQUE INDEX models_one_active ON models (unit_id, objective, tag) WHERE status = 'active';
CREATE INDEX models_unit ON models (unit_id, objective, tag, trained_at DESC);

-- The arrays a model serves with, packed little-endian float32 so loading a model is one row:
-- item_vectors (n_items x dim), item_biases (n_items), and the user prior over [vector, bias]
-- (prior_mean: dim + 1, prior_cov: (dim + 1) x (dim + 1)). item_ids gives the row order.
CREATE TABLE model_arrays (
    model_id      bigint PRIMARY KEY REFERENCES models (model_id) ON DELETE CASCADE,
    dim           integer NOT NULL CHECK (dim > 0),
    item_ids      text[] NOT NULL,
    item_vectors  bytea NOT NULL,
    item_biases   bytea NOT NULL,
    prior_mean    bytea NOT NULL,
    prior_cov     bytea NOT NULL,
    calibration   jsonb NOT NULL DEFAULT '{}'::jsonb,   -- maps raw scores to probabilities
    extra         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- feature vocabularies, blend settings
    item_weights  bytea                                 -- engagement: EASE item-item weights (n_items^2)
);

CREATE TABLE experiments (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    description text,
    variants    jsonb NOT NULL,   -- [{name, weight, strategy, params, model_tag}]
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at  timestamptz
);

-- Every answer the service gives, so analysts and the calibration job can join predictions
-- to the outcomes that followed.
CREATE TABLE recommendation_log (
    id            bigserial PRIMARY KEY,
    request_id    text NOT NULL,
    user_id       text NOT NULL,
    units         text[] NOT NULL,
    experiment    text,
    variant       text,
    strategy      text NOT NULL,
    model_id      bigint,
    fallback      text,
    history_rows  integer NOT NULL DEFAULT 0,
    item_ids      text[] NOT NULL,
    scores        real[] NOT NULL,   -- p(correct) for practice models, ranking score otherwise
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendation_log_user_time ON recommendation_log (user_id, created_at);
CREATE INDEX recommendation_log_time ON recommendation_log (created_at);
