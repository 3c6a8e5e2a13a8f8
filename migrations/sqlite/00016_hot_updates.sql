-- Registration Updates without index writes (as on PostgreSQL, where they become HOT updates):
-- every Update rewrote expires_at, so SQLite deleted and inserted an entry of its index for each.
-- Nothing needs the index: the expiry sweep works on the registry in memory, loaded from the rows
-- that are not de-registered at start-up, and the device list's online filter runs on the rows it
-- reads in endpoint order. device_owners is looked up by node, the lease compared on its rows.

-- +goose Up
DROP INDEX registrations_expires_at;
DROP INDEX device_owners_node;
CREATE INDEX device_owners_node ON device_owners (node_id);

-- +goose Down
DROP INDEX device_owners_node;
CREATE INDEX device_owners_node ON device_owners (node_id, lease_until);
CREATE INDEX registrations_expires_at ON registrations (expires_at);
