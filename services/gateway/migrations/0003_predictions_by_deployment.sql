-- "Does this deployment still run anything" checks before it is deleted.
CREATE INDEX predictions_deployment_active_idx ON __SCHEMA__.predictions ((view->>'deployment'))
    WHERE status NOT IN ('succeeded', 'failed', 'canceled');
