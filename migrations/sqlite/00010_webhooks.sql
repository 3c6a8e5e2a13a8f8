-- Webhooks: subscriptions and their outbox. A delivery row is written in the transaction that
-- stores its source (a job transition, a campaign event, a registration), one row per matching
-- subscription, so no event is lost to a crash between the two.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE webhook_subscriptions (
    id         TEXT NOT NULL PRIMARY KEY,
    url        TEXT NOT NULL,
    kinds      TEXT NOT NULL,   -- ",update_job,campaign," : the outbox statements match with LIKE
    secret     TEXT NOT NULL,   -- HMAC-SHA256 key of the signatures
    enabled    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT NOT NULL PRIMARY KEY, -- subscription id "." event id: stable across retries
    subscription_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,  -- update_job, campaign, registration
    event_type      TEXT NOT NULL,  -- update_job, campaign, registered, deregistered
    endpoint        TEXT NOT NULL,
    at              INTEGER NOT NULL, -- when the event happened
    payload         TEXT NOT NULL,  -- JSON data of the body
    state           TEXT NOT NULL,  -- pending, delivered, dead
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    queued_at       INTEGER NOT NULL, -- created, or retried by an operator: the max age counts from here
    last_status     INTEGER NOT NULL, -- HTTP status of the last attempt, 0 without an answer
    last_error      TEXT NOT NULL,
    ended_at        INTEGER        -- delivered or dead
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, state, queued_at);

-- +goose Down
DROP INDEX webhook_deliveries_subscription;
DROP INDEX webhook_deliveries_due;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
