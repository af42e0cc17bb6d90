-- Secrets every gateway replica must share, created once by whichever replica needs one first
-- (`INSERT ... ON CONFLICT DO NOTHING`): the key that signs file download links.
CREATE TABLE __SCHEMA__.signing_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
