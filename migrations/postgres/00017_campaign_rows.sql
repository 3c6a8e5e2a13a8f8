-- Claims without their index by campaign: a campaign's claims are released through its members,
-- whose claims they are (sqlstore's SaveTick; CreateCampaign and AddMembers store a claim and its
-- member in one transaction), so a campaign start of 10,000 devices writes 10,000 index entries
-- less. (SQLite's 00017 also makes campaign_members and campaign_claims WITHOUT ROWID tables;
-- PostgreSQL's tables are heaps with their primary key as an index either way.)

-- +goose Up
DROP INDEX campaign_claims_campaign;

-- +goose Down
CREATE INDEX campaign_claims_campaign ON campaign_claims (campaign_id);
