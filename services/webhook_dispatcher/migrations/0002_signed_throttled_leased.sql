-- Bodies are kept as the exact bytes sent and signed (jsonb would reorder keys), with the account whose
-- secret signs them. A sender holds a delivery by lease, so a crashed sender's delivery goes back to the
-- others once the lease ends, under the same id (the `webhook-id` header).
ALTER TABLE __SCHEMA__.deliveries ALTER COLUMN body TYPE text USING body::text;
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN account text NOT NULL DEFAULT '';
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN lease_until timestamptz;
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN lease_token uuid;
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN first_attempt_at timestamptz;
ALTER TABLE __SCHEMA__.deliveries DROP CONSTRAINT deliveries_status_check;
-- `superseded`: an unsent output/logs delivery made pointless by the completed one queued after it.
ALTER TABLE __SCHEMA__.deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'superseded'));
CREATE INDEX deliveries_pending_by_prediction ON __SCHEMA__.deliveries (prediction_id, seq) WHERE status = 'pending';

-- One signing secret per account (a projection of `webhook.secret_created`).
CREATE TABLE __SCHEMA__.secrets (
    account     text PRIMARY KEY,
    key         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every delivery attempt (a projection of `webhook.delivery_attempted`), for the history and summary reads.
CREATE TABLE __SCHEMA__.attempts (
    event_id       uuid PRIMARY KEY,
    prediction_id  text NOT NULL,
    account        text NOT NULL,
    delivery_id    uuid NOT NULL,
    webhook_event  text NOT NULL,
    url            text NOT NULL,
    status_code    integer,
    latency_ms     double precision NOT NULL,
    error          text,
    attempt        integer NOT NULL,
    outcome        text NOT NULL,
    attempted_at   timestamptz NOT NULL
);

CREATE INDEX attempts_by_prediction ON __SCHEMA__.attempts (prediction_id, attempted_at);
CREATE INDEX attempts_by_account ON __SCHEMA__.attempts (account, attempted_at);
