-- Device attributes: the Object 3 identity a device reports (manufacturer /3/0/0, model /3/0/1,
-- device type /3/0/17) as columns of registrations, so the device list filters on them, and the
-- operator's labels in a table of their own, independent of registrations: a device may be
-- labelled before it first registers. The unused attrs column goes.

-- +goose Up
ALTER TABLE registrations ADD COLUMN manufacturer TEXT NOT NULL DEFAULT '';
ALTER TABLE registrations ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE registrations ADD COLUMN device_type TEXT NOT NULL DEFAULT '';
ALTER TABLE registrations DROP COLUMN attrs;
CREATE INDEX registrations_model ON registrations (model, endpoint);

CREATE TABLE device_labels (
    endpoint TEXT NOT NULL,
    key      TEXT NOT NULL, -- [a-z0-9_.-]{1,63}
    value    TEXT NOT NULL, -- up to 256 bytes
    PRIMARY KEY (endpoint, key)
);
-- The label filter of the device list: endpoint IN (SELECT endpoint ... WHERE key = ? AND value = ?).
CREATE INDEX device_labels_key_value ON device_labels (key, value, endpoint);

-- +goose Down
DROP TABLE device_labels;
DROP INDEX registrations_model;
ALTER TABLE registrations ADD COLUMN attrs TEXT;
ALTER TABLE registrations DROP COLUMN device_type;
ALTER TABLE registrations DROP COLUMN model;
ALTER TABLE registrations DROP COLUMN manufacturer;
