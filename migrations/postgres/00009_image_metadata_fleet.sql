-- Image metadata and fleet queries: an image's free key/values (images.metadata, JSON, beside the
-- release notes that 00002 already keeps), and a sortable key of each device's firmware version
-- (registrations.firmware_key), so that the device list compares versions (firmware < 1.4.2) and
-- sorts by them in SQL. firmware_key is registration.VersionKey of firmware_version: '' for a
-- version that is not dotted numbers, NULL until lwota computes it (on the next save, or the
-- backfill sqlstore runs after migrating).

-- +goose Up
ALTER TABLE images ADD COLUMN metadata TEXT; -- JSON object, NULL when none
ALTER TABLE registrations ADD COLUMN firmware_key TEXT COLLATE "C";
CREATE INDEX registrations_firmware_key ON registrations (firmware_key, endpoint);
-- Failures of the last day by reason (the fleet overview): terminal jobs by state and time.
CREATE INDEX update_jobs_state_updated ON update_jobs (state, updated_at);

-- +goose Down
DROP INDEX update_jobs_state_updated;
DROP INDEX registrations_firmware_key;
ALTER TABLE registrations DROP COLUMN firmware_key;
ALTER TABLE images DROP COLUMN metadata;
