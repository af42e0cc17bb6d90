-- Read model of predictions, folded from the scheduler's lifecycle events.
CREATE TABLE __SCHEMA__.predictions (
    id              text PRIMARY KEY,
    account         text NOT NULL,
    stream_version  integer NOT NULL,
    status          text NOT NULL,
    created_at      timestamptz NOT NULL,
    view            jsonb NOT NULL
);

CREATE INDEX predictions_account_created_idx ON __SCHEMA__.predictions (account, created_at DESC, id DESC);
