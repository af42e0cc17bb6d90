-- Data retention: when an ended API prediction's input, output, logs and files are removed. Written in the
-- transaction that records the prediction's end; a periodic sweep removes due ones and deletes their rows.
CREATE TABLE __SCHEMA__.data_removals (
    prediction_id text PRIMARY KEY,
    due_at timestamptz NOT NULL
);
CREATE INDEX data_removals_due_idx ON __SCHEMA__.data_removals (due_at);

-- Predictions that ended before this table existed are removed an hour (the default period) after their end.
INSERT INTO __SCHEMA__.data_removals (prediction_id, due_at)
SELECT ended.data->>'id', ended.recorded_at + interval '1 hour'
FROM __SCHEMA__.events ended
JOIN __SCHEMA__.events created ON created.stream_id = ended.stream_id AND created.type = 'prediction.created'
WHERE ended.type IN ('prediction.succeeded', 'prediction.failed', 'prediction.canceled')
  AND coalesce(created.data->>'source', 'api') <> 'web'
ON CONFLICT (prediction_id) DO NOTHING;
