-- Campaigns: the rollout (one JSON document per campaign, with the columns queries need), its
-- devices, the claims that keep a device in one active campaign at a time, its history, and
-- the lease electing the node that drives campaigns.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE campaigns (
    id         TEXT NOT NULL PRIMARY KEY,
    state      TEXT NOT NULL,
    version    INTEGER NOT NULL,   -- compare-and-set: every save is at version+1
    followed   INTEGER NOT NULL, -- 1 while the leader must tick it (Campaign.Followed)
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL     -- JSON campaigns.Campaign
);
CREATE INDEX campaigns_created ON campaigns (created_at);
CREATE INDEX campaigns_followed ON campaigns (followed);

CREATE TABLE campaign_members (
    campaign_id   TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    wave          INTEGER NOT NULL,
    ord           INTEGER NOT NULL, -- start order within the wave
    cap_label     TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    job_id        TEXT NOT NULL DEFAULT '',
    job_state     TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER,
    pending_since INTEGER,
    ended_at      INTEGER,
    updated_at    INTEGER,
    PRIMARY KEY (campaign_id, endpoint)
);
CREATE INDEX campaign_members_state ON campaign_members (campaign_id, state, endpoint);

-- One row per device held by a campaign that has not ended: the primary key is the rule.
CREATE TABLE campaign_claims (
    endpoint    TEXT NOT NULL PRIMARY KEY,
    campaign_id TEXT NOT NULL
);
CREATE INDEX campaign_claims_campaign ON campaign_claims (campaign_id);

CREATE TABLE campaign_events (
    campaign_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);

CREATE TABLE leases (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- A campaign follows its jobs by their last change.
CREATE INDEX update_jobs_campaign ON update_jobs (campaign_id, updated_at);

-- +goose Down
DROP INDEX update_jobs_campaign;
DROP TABLE leases;
DROP TABLE campaign_events;
DROP TABLE campaign_claims;
DROP TABLE campaign_members;
DROP TABLE campaigns;
