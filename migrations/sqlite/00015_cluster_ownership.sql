-- Cluster membership and device ownership (as on PostgreSQL, for a schema that matches: a
-- cluster needs PostgreSQL, and a SQLite node never writes these tables).
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE cluster_nodes (
    node_id      INTEGER NOT NULL PRIMARY KEY CHECK (node_id BETWEEN 1 AND 65535),
    name         TEXT    NOT NULL UNIQUE,
    forward_addr TEXT    NOT NULL DEFAULT '',
    api_url      TEXT    NOT NULL DEFAULT '',
    draining     BOOLEAN NOT NULL DEFAULT FALSE,
    joined_at    INTEGER,
    heartbeat_at INTEGER
);

CREATE TABLE device_owners (
    endpoint    TEXT    NOT NULL PRIMARY KEY,
    node_id     INTEGER NOT NULL,
    peer_addr   TEXT    NOT NULL,
    lease_until INTEGER NOT NULL
);
CREATE INDEX device_owners_node ON device_owners (node_id, lease_until);

CREATE TABLE cluster_messages (
    id         TEXT    NOT NULL PRIMARY KEY,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- No registrations (id) index here, unlike PostgreSQL: only a cluster looks registrations up by
-- id, and a single node's Registers should not pay for the index.

-- +goose Down
DROP TABLE cluster_messages;
DROP TABLE device_owners;
DROP TABLE cluster_nodes;
