-- The paths of an Observe-Composite (LwM2M 1.1+): one observation on the root whose paths are
-- listed here, space-separated, so that it is observed again after the device re-registers.
-- Empty for a plain observation of its path.

-- +goose Up
ALTER TABLE observations ADD COLUMN paths TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE observations DROP COLUMN paths;
