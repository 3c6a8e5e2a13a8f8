-- Cluster membership and device ownership: which lwota nodes share this database, and which node
-- a device talks to (only that node sends it downlinks; the others hand requests over to it).
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE cluster_nodes (
    node_id      INTEGER NOT NULL PRIMARY KEY CHECK (node_id BETWEEN 1 AND 65535),
    name         TEXT COLLATE "C" NOT NULL UNIQUE,
    forward_addr TEXT    NOT NULL DEFAULT '', -- host:port of the node's inter-node UDP relay, '' for none
    api_url      TEXT    NOT NULL DEFAULT '', -- the node's REST API, '' when not given
    draining     BOOLEAN NOT NULL DEFAULT FALSE,
    joined_at    BIGINT,
    heartbeat_at BIGINT
);

CREATE TABLE device_owners (
    endpoint    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    node_id     INTEGER NOT NULL,
    peer_addr   TEXT    NOT NULL, -- "udp 192.0.2.1:5683" as the owner saw it
    lease_until BIGINT  NOT NULL  -- the registration's expiry plus a grace
);
CREATE INDEX device_owners_node ON device_owners (node_id, lease_until);

-- Answers too large for a NOTIFY payload (8000 bytes), fetched and deleted by the node notified.
CREATE TABLE cluster_messages (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- An Update that reaches a node other than the one the device registered at is found by its id.
CREATE INDEX registrations_id ON registrations (id);

-- A device that moves to another node tells its old node at once (in the transaction that moved
-- it): the old node stops driving it. A new row or a renewal by the same node notifies nobody.
-- +goose StatementBegin
CREATE FUNCTION lwota_owner_moved() RETURNS trigger AS $$
BEGIN
    IF NEW.node_id <> OLD.node_id THEN
        PERFORM pg_notify('lwota_owner_moved', OLD.node_id || ' ' || NEW.node_id || ' ' || NEW.endpoint);
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER device_owners_moved AFTER UPDATE ON device_owners
    FOR EACH ROW EXECUTE FUNCTION lwota_owner_moved();

-- +goose Down
DROP TRIGGER device_owners_moved ON device_owners;
DROP FUNCTION lwota_owner_moved();
DROP INDEX registrations_id;
DROP TABLE cluster_messages;
DROP TABLE device_owners;
DROP TABLE cluster_nodes;
