-- The cluster keyring: the secrets every lwota node of a cluster shares (the download-token key,
-- the credential-sealing key), each sealed (AES-256-GCM) under the cluster key given to every node.
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE cluster_keys (
    purpose    TEXT COLLATE "C" NOT NULL, -- download-token or credential-seal
    key_id     INTEGER NOT NULL,          -- 1, 2, ... per purpose, in order of creation
    state      TEXT    NOT NULL,          -- active (one per purpose) or accepted (older, still opens/verifies)
    nonce      BYTEA   NOT NULL,          -- GCM nonce of sealed
    sealed     BYTEA   NOT NULL,          -- the key, sealed with purpose and key_id as additional data
    created_at BIGINT,
    PRIMARY KEY (purpose, key_id)
);

-- The key a credential row is sealed with. Rows written before the keyring existed were sealed
-- with DATA_DIR/credential.key, which is key 1 when it is imported into the keyring.
ALTER TABLE device_credentials ADD COLUMN key_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX device_credentials_key_id ON device_credentials (key_id);
-- Bootstrap PSKs (00011) are sealed with the same key.
ALTER TABLE bootstrap_credentials ADD COLUMN key_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX bootstrap_credentials_key_id ON bootstrap_credentials (key_id);

-- +goose Down
DROP INDEX bootstrap_credentials_key_id;
ALTER TABLE bootstrap_credentials DROP COLUMN key_id;
DROP INDEX device_credentials_key_id;
ALTER TABLE device_credentials DROP COLUMN key_id;
DROP TABLE cluster_keys;
