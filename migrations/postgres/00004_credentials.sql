-- DTLS pre-shared keys of devices, sealed (AES-256-GCM) under the server's credential key.
-- Times are BIGINT unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE device_credentials (
    endpoint   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    identity   TEXT COLLATE "C" NOT NULL UNIQUE, -- PSK identity the device presents in the handshake
    nonce      BYTEA  NOT NULL,                  -- GCM nonce of sealed_key
    sealed_key BYTEA  NOT NULL,                  -- the PSK, sealed with endpoint and identity as additional data
    created_at BIGINT,
    updated_at BIGINT
);

-- +goose Down
DROP TABLE device_credentials;
