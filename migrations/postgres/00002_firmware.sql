-- Firmware catalog: trusted signing keys and verified images (their bytes live in the blob store).
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time. Keys and filtered
-- columns use the "C" collation so that ordering is bytewise, as in SQLite and Go.

-- +goose Up
CREATE TABLE signing_keys (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name           TEXT   NOT NULL,
    algorithm      TEXT   NOT NULL, -- "ed25519", "ecdsa-p256-sha256"
    public_key_pem TEXT   NOT NULL,
    fingerprint    TEXT COLLATE "C" NOT NULL UNIQUE, -- SHA-256 of the DER SubjectPublicKeyInfo, hex
    created_at     BIGINT,
    revoked_at     BIGINT           -- NULL while the key is trusted
);

CREATE TABLE images (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- time-ordered: cursor paging by id lists oldest first
    name          TEXT    NOT NULL,
    version       TEXT COLLATE "C" NOT NULL,
    target        TEXT    NOT NULL, -- JSON firmware.Selector
    model         TEXT COLLATE "C" NOT NULL, -- target.model, for the model filter
    size          BIGINT  NOT NULL,
    sha256        TEXT    NOT NULL, -- lowercase hex
    signature_alg TEXT    NOT NULL, -- "" when unsigned
    key_id        TEXT    NOT NULL, -- signing_keys.id that verified it, "" when unsigned
    signature     BYTEA,            -- detached signature, NULL when unsigned
    unsigned      BOOLEAN NOT NULL,
    uploader      TEXT    NOT NULL,
    created_at    BIGINT,
    release_notes TEXT    NOT NULL,
    labels        TEXT,             -- JSON object, NULL when none
    mcuboot       TEXT,             -- JSON mcuboot.Info, NULL when not an MCUboot image
    blob_key      TEXT COLLATE "C" NOT NULL -- images/sha256/<hex>: shared by images with the same bytes
);
CREATE INDEX images_model ON images (model, id);
CREATE INDEX images_version ON images (version, id);
CREATE INDEX images_blob_key ON images (blob_key);

-- One row per label of an image, for the label filter (images.labels keeps the map for reading).
CREATE TABLE image_labels (
    image_id TEXT COLLATE "C" NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    name     TEXT COLLATE "C" NOT NULL,
    value    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (image_id, name)
);
CREATE INDEX image_labels_pair ON image_labels (name, value, image_id);

-- +goose Down
DROP TABLE image_labels;
DROP TABLE images;
DROP TABLE signing_keys;
