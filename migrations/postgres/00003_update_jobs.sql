-- Firmware update jobs (one device, one image) and the history of their transitions.
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE update_jobs (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    endpoint        TEXT COLLATE "C" NOT NULL,
    active_endpoint TEXT COLLATE "C",          -- endpoint while the job is active, NULL once terminal
    image_id        TEXT    NOT NULL,
    image_version   TEXT    NOT NULL,
    image_size      BIGINT  NOT NULL,
    method          TEXT    NOT NULL, -- "pull", "push", "auto"
    policy          TEXT    NOT NULL, -- JSON fwupdate.Policy
    state           TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    seq             INTEGER NOT NULL, -- transitions so far: the last update_job_history.seq
    created_at      BIGINT,
    updated_at      BIGINT,
    step_at         TEXT    NOT NULL, -- JSON object state -> unix nanoseconds
    bytes_delivered BIGINT  NOT NULL,
    device_state    INTEGER NOT NULL, -- last /5/0/3, -1 unknown
    device_result   INTEGER NOT NULL, -- last /5/0/5, -1 unknown
    protocols_tried TEXT    NOT NULL, -- JSON array of /5/0/8 protocol numbers
    next_attempt_at BIGINT,
    campaign_id     TEXT    NOT NULL
);
-- At most one active job per device: NULLs never collide, on SQLite as on PostgreSQL.
CREATE UNIQUE INDEX update_jobs_active_endpoint ON update_jobs (active_endpoint);
CREATE INDEX update_jobs_endpoint ON update_jobs (endpoint, created_at);

CREATE TABLE update_job_history (
    job_id        TEXT COLLATE "C" NOT NULL,
    seq           INTEGER NOT NULL,
    from_state    TEXT    NOT NULL, -- "" for the creation
    to_state      TEXT    NOT NULL,
    at            BIGINT,
    reason        TEXT    NOT NULL,
    device_state  INTEGER NOT NULL,
    device_result INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- +goose Down
DROP TABLE update_job_history;
DROP TABLE update_jobs;
