-- LwM2M Bootstrap Server: the bootstrap PSKs of devices (sealed like device_credentials), the
-- bootstrap configurations (per endpoint, endpoint-name prefix or label; one JSON document each)
-- and the sessions the bootstrap listener ran, step by step.
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE bootstrap_credentials (
    endpoint   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    identity   TEXT COLLATE "C" NOT NULL UNIQUE, -- PSK identity the device presents to the bootstrap listener
    nonce      BYTEA  NOT NULL,
    sealed_key BYTEA  NOT NULL,                  -- sealed with endpoint and identity as additional data
    created_at BIGINT,
    updated_at BIGINT
);

CREATE TABLE bootstrap_configs (
    scope      TEXT COLLATE "C" NOT NULL, -- endpoint, prefix or label
    name       TEXT COLLATE "C" NOT NULL, -- the endpoint name, the prefix, or "key=value"
    updated_at BIGINT NOT NULL,
    doc        TEXT   NOT NULL,           -- JSON bootstrap.Config (no secret in it)
    PRIMARY KEY (scope, name)
);

CREATE TABLE bootstrap_sessions (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    endpoint   TEXT COLLATE "C" NOT NULL,
    started_at BIGINT NOT NULL,
    outcome    TEXT   NOT NULL, -- running, success, failure
    doc        TEXT   NOT NULL  -- JSON bootstrap.Session: steps and reason
);
CREATE INDEX bootstrap_sessions_endpoint ON bootstrap_sessions (endpoint, started_at);

-- +goose Down
DROP TABLE bootstrap_sessions;
DROP TABLE bootstrap_configs;
DROP TABLE bootstrap_credentials;
