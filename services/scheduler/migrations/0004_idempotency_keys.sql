-- Idempotency-Key of prediction creation: written in the transaction that records `prediction.created`, so a
-- key is stored if and only if its prediction is. A key is honoured for 24 hours; a later request with it
-- takes the row over.
CREATE TABLE __SCHEMA__.idempotency_keys (
    account text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    prediction_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_keys_created_idx ON __SCHEMA__.idempotency_keys (created_at);
