-- The prediction as the scheduler's events describe it, folded in stream order (a cache of those events).
CREATE TABLE __SCHEMA__.predictions (
    prediction_id   text PRIMARY KEY,
    stream_version  integer NOT NULL,
    view            jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Webhooks decided but not necessarily sent: queued in the transaction that consumed the event.
CREATE TABLE __SCHEMA__.deliveries (
    seq               bigserial UNIQUE,
    id                uuid PRIMARY KEY,
    prediction_id     text NOT NULL,
    webhook_event     text NOT NULL,
    url               text NOT NULL,
    body              jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deliveries_due ON __SCHEMA__.deliveries (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX deliveries_by_prediction ON __SCHEMA__.deliveries (prediction_id, seq);
