-- The members' state index holds only members that have left the initial state (pending): a
-- campaign start stores its members all pending, so it writes no entry in this index (one
-- B-tree of three less at a 10,000-device start), and the entries come as members move, a few
-- a tick. The reads by a state other than pending (the console's "failed" list, the failure
-- reasons of a campaign's summary) carry the index's own term, state <> 'pending', beside their
-- state = ?, so that both backends may use the partial index; a read of pending members walks
-- the campaign's members by the primary key (campaign_id, endpoint), in endpoint order.

-- +goose Up
DROP INDEX campaign_members_state;
CREATE INDEX campaign_members_state ON campaign_members (campaign_id, state, endpoint) WHERE state <> 'pending';

-- +goose Down
DROP INDEX campaign_members_state;
CREATE INDEX campaign_members_state ON campaign_members (campaign_id, state, endpoint);
