-- Read models of the registry, derived from __SCHEMA__.events by services/registry/projections.py.
-- No foreign keys: rebuilding truncates the tables one by one and replays the log.
CREATE TABLE __SCHEMA__.accounts (
    username    text PRIMARY KEY,
    type        text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE __SCHEMA__.tokens (
    token_id     text PRIMARY KEY,
    username     text NOT NULL,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    disabled_at  timestamptz
);
CREATE INDEX tokens_username ON __SCHEMA__.tokens (username);

CREATE TABLE __SCHEMA__.models (
    owner              text NOT NULL,
    name               text NOT NULL,
    visibility         text NOT NULL,
    hardware           text NOT NULL,
    description        text NOT NULL,
    created_at         timestamptz NOT NULL,
    latest_version_id  text,
    PRIMARY KEY (owner, name)
);

CREATE TABLE __SCHEMA__.versions (
    id              text PRIMARY KEY,
    owner           text NOT NULL,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL,
    cog_version     text NOT NULL,
    openapi_schema  jsonb NOT NULL,
    package_key     text NOT NULL,
    predictor_ref   text NOT NULL,
    hardware        text NOT NULL,
    -- Log position of version.created: orders versions created within the same clock tick.
    position        bigint NOT NULL
);
CREATE INDEX versions_by_model ON __SCHEMA__.versions (owner, name, position DESC);
