-- Core LwM2M server state: registrations, queued requests, observations, latest values.
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time. Keys use the "C"
-- collation so that ordering and prefix ranges are bytewise, as in SQLite and Go.

-- +goose Up
CREATE TABLE registrations (
    endpoint         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    id               TEXT    NOT NULL,
    lwm2m_version    TEXT    NOT NULL,
    lifetime         BIGINT  NOT NULL,
    binding          TEXT    NOT NULL,
    queue_mode       BOOLEAN NOT NULL,
    sms_number       TEXT    NOT NULL,
    root_path        TEXT    NOT NULL,
    content_formats  TEXT    NOT NULL, -- JSON array of content-format numbers
    objects          TEXT    NOT NULL, -- JSON array of {path, version}
    object_ids       TEXT    NOT NULL, -- ",1,3,5,": object ids for a LIKE membership test
    addr_network     TEXT    NOT NULL, -- "udp", "dtls", "" when unknown
    addr             TEXT    NOT NULL, -- "192.0.2.1:5683", "[2001:db8::1]:5684", ""
    identity         TEXT    NOT NULL,
    registered_at    BIGINT,
    updated_at       BIGINT,
    last_seen        BIGINT,
    deregistered_at  BIGINT,
    expires_at       BIGINT,           -- updated_at + lifetime
    firmware_version TEXT COLLATE "C" NOT NULL,
    attrs            TEXT              -- JSON object, NULL when none
);
CREATE INDEX registrations_expires_at ON registrations (expires_at);
CREATE INDEX registrations_firmware_version ON registrations (firmware_version, endpoint);

CREATE TABLE pending_requests (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    endpoint   TEXT COLLATE "C" NOT NULL,
    state      TEXT   NOT NULL,
    request    TEXT   NOT NULL, -- JSON dm.Request
    result     TEXT,            -- JSON dm.Result, NULL until answered
    error      TEXT   NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0, -- wake-ups at which sending timed out
    created_at BIGINT,
    updated_at BIGINT
);
CREATE INDEX pending_requests_endpoint_state ON pending_requests (endpoint, state, created_at);

CREATE TABLE observations (
    endpoint   TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    token      BYTEA   NOT NULL,
    format     INTEGER NOT NULL,
    created_at BIGINT,
    PRIMARY KEY (endpoint, path)
);

CREATE TABLE latest_values (
    endpoint TEXT COLLATE "C" NOT NULL,
    path     TEXT COLLATE "C" NOT NULL,
    records  TEXT   NOT NULL, -- JSON array of lwm2m.Record
    time     BIGINT,
    PRIMARY KEY (endpoint, path)
);

-- +goose Down
DROP TABLE latest_values;
DROP TABLE observations;
DROP TABLE pending_requests;
DROP TABLE registrations;
