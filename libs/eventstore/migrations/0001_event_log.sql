-- The event log of one service: append-only, one row per event.
CREATE TABLE __SCHEMA__.events (
    position        bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    stream_id       text NOT NULL,
    stream_version  integer NOT NULL CHECK (stream_version > 0),
    type            text NOT NULL,
    schema_version  integer NOT NULL,
    data            jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

-- Messages committed together with the events that caused them, published to NATS by the relay.
CREATE TABLE __SCHEMA__.outbox (
    position    bigserial PRIMARY KEY,
    msg_id      text NOT NULL,
    subject     text NOT NULL,
    payload     bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- What each consumer has already applied, written in the same transaction as its effects.
CREATE TABLE __SCHEMA__.tracking (
    consumer      text NOT NULL,
    message_id    text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE FUNCTION __SCHEMA__.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('__SCHEMA___outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON __SCHEMA__.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION __SCHEMA__.notify_outbox();
