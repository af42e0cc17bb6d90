-- Fair share: a job held back from its backed-up queue (its account had its share of the queue) waits here
-- with what the outbox would have published, until the control loop releases it in turn.
ALTER TABLE __SCHEMA__.work ADD COLUMN held_job jsonb;
CREATE INDEX work_held_idx ON __SCHEMA__.work (queue, created_at) WHERE held_job IS NOT NULL;
