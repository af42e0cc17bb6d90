-- Predictions not yet ended, by queue: what waits (started_at NULL) and what runs where. Written in the
-- transactions that record `prediction.created`, `prediction.started` and the prediction's end, so the
-- scheduler's queue depths, ages and positions never disagree with the event log.
CREATE TABLE __SCHEMA__.work (
    prediction_id text PRIMARY KEY,
    queue text NOT NULL,
    label text NOT NULL,
    model_version text NOT NULL,
    deployment text,
    account text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    node text,
    instance text,
    -- What the prediction's logs last said about its wait (queued, booting phase, no hardware).
    told text NOT NULL DEFAULT ''
);
CREATE INDEX work_queue_idx ON __SCHEMA__.work (queue, created_at);
-- Instance and node streams are folded on every control tick: find their events without scanning predictions'.
CREATE INDEX events_instances_idx ON __SCHEMA__.events (position)
    WHERE (stream_id LIKE 'instance-%' OR stream_id LIKE 'node-%');
