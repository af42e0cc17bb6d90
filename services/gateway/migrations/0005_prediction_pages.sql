-- What owners decided about their predictions' web pages: shared by link, data removed.
-- Folded from the gateway's own event log (`prediction-page-<id>` streams).
CREATE TABLE __SCHEMA__.prediction_pages (
    id              text PRIMARY KEY,
    shared          boolean NOT NULL DEFAULT false,
    data_removed_at timestamptz
);
