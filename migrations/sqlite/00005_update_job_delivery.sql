-- What one attempt of an update job delivers, kept so that a restart resumes the transfer in
-- flight instead of starting a second one.

-- +goose Up
ALTER TABLE update_jobs ADD COLUMN from_version TEXT NOT NULL DEFAULT ''; -- /3/0/3 before the attempt
ALTER TABLE update_jobs ADD COLUMN delivery TEXT NOT NULL DEFAULT '';     -- "push", "coap", "coaps", "http", "https"
CREATE INDEX update_jobs_active_image ON update_jobs (image_id) WHERE active_endpoint IS NOT NULL;

-- +goose Down
DROP INDEX update_jobs_active_image;
ALTER TABLE update_jobs DROP COLUMN delivery;
ALTER TABLE update_jobs DROP COLUMN from_version;
