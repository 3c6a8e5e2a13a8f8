-- PostgreSQL only (fill factor 50 on registrations and device_owners, so that a batch of
-- Updates touching every row of a page keeps them HOT): SQLite has no fill factor, and an
-- Update rewrites its row in place in the table's B-tree.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
