-- Finding predictions by lifecycle event type (operations queries, e.g. stuck `starting` ones).
CREATE INDEX events_type_idx ON __SCHEMA__.events (type, recorded_at);
