-- Run counts per model and "is this version still running anything" checks.
CREATE INDEX predictions_model_idx ON __SCHEMA__.predictions ((view->>'model'));
CREATE INDEX predictions_version_active_idx ON __SCHEMA__.predictions ((view->>'version'))
    WHERE status NOT IN ('succeeded', 'failed', 'canceled');
