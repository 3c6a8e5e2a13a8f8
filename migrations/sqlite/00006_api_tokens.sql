-- API bearer tokens with their roles, and the audit log.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE api_tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,        -- admin, release, ci, support
    -- SHA-256 (hex) of the secret, never the secret. A fast hash is right: secrets are 32 random
    -- bytes (or 32+ characters given with --admin-token), out of reach of guessing, and every
    -- API request hashes one.
    secret_hash  TEXT    NOT NULL UNIQUE,
    created_at   INTEGER,
    created_by   TEXT    NOT NULL DEFAULT '', -- "system" or "token:<id>"
    last_used_at INTEGER,                 -- written at most once a minute per token
    revoked_at   INTEGER
);

CREATE TABLE audit_log (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, -- never reused, so a cursor stays valid
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,         -- "token:<id>", "device:<endpoint>" or "system"
    actor_name  TEXT    NOT NULL DEFAULT '',
    role        TEXT    NOT NULL DEFAULT '',
    action      TEXT    NOT NULL,         -- "POST /api/v1/tokens", "update.state", ...
    target      TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT    NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 0, -- HTTP status of an API call, 0 otherwise
    outcome     TEXT    NOT NULL DEFAULT '', -- success, denied, failure
    detail      TEXT                      -- JSON object of strings, NULL when empty
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE api_tokens;
