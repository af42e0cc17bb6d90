-- Cancel-After: predictions to cancel when their deadline passes, unless they ended first. Written in the
-- transaction that records `prediction.created`; a periodic sweep cancels due ones and deletes their rows.
CREATE TABLE __SCHEMA__.deadlines (
    prediction_id text PRIMARY KEY,
    due_at timestamptz NOT NULL
);
CREATE INDEX deadlines_due_idx ON __SCHEMA__.deadlines (due_at);
