-- DTLS pre-shared keys of devices, sealed (AES-256-GCM) under the server's credential key.
-- Times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.

-- +goose Up
CREATE TABLE device_credentials (
    endpoint   TEXT    NOT NULL PRIMARY KEY,
    identity   TEXT    NOT NULL UNIQUE, -- PSK identity the device presents in the handshake
    nonce      BLOB    NOT NULL,        -- GCM nonce of sealed_key
    sealed_key BLOB    NOT NULL,        -- the PSK, sealed with endpoint and identity as additional data
    created_at INTEGER,
    updated_at INTEGER
);

-- +goose Down
DROP TABLE device_credentials;
