-- Deployments with their current release, folded from deployment.created / .released / .deleted.
CREATE TABLE __SCHEMA__.deployments (
    owner           text NOT NULL,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL,
    release_number  integer NOT NULL,
    model           text NOT NULL,
    version         text NOT NULL,
    hardware        text NOT NULL,
    min_instances   integer NOT NULL,
    max_instances   integer NOT NULL,
    released_by     text NOT NULL,
    released_at     timestamptz NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE INDEX deployments_by_owner ON __SCHEMA__.deployments (owner, created_at DESC, name DESC);
