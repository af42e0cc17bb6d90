-- Tracking rows are kept only as long as their message could come again (see libs/eventstore/tracking.py).
-- They are written in time order, so a BRIN index finds the old ones at almost no cost to each insert.
CREATE INDEX tracking_processed_at ON __SCHEMA__.tracking USING brin (processed_at);
