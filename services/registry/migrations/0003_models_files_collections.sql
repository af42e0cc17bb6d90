-- Model details (PATCH /v1/models), model listing order, uploaded files and collections.
ALTER TABLE __SCHEMA__.models
    ADD COLUMN github_url                 text NOT NULL DEFAULT '',
    ADD COLUMN paper_url                  text NOT NULL DEFAULT '',
    ADD COLUMN license_url                text NOT NULL DEFAULT '',
    ADD COLUMN cover_image_url            text NOT NULL DEFAULT '',
    ADD COLUMN weights_url                text NOT NULL DEFAULT '',
    ADD COLUMN readme                     text NOT NULL DEFAULT '',
    -- Listing order: when the latest version was created, or the model itself while it has none.
    ADD COLUMN listed_at                  timestamptz;
UPDATE __SCHEMA__.models m SET listed_at = COALESCE(
    (SELECT v.created_at FROM __SCHEMA__.versions v WHERE v.id = m.latest_version_id), m.created_at);
ALTER TABLE __SCHEMA__.models ALTER COLUMN listed_at SET NOT NULL;
CREATE INDEX models_public_listed ON __SCHEMA__.models (listed_at, owner, name) WHERE visibility = 'public';
CREATE INDEX models_public_created ON __SCHEMA__.models (created_at, owner, name) WHERE visibility = 'public';

CREATE TABLE __SCHEMA__.files (
    id            text PRIMARY KEY,
    owner         text NOT NULL,
    name          text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    md5           text NOT NULL,
    metadata      jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX files_by_owner ON __SCHEMA__.files (owner, created_at DESC, id DESC);

CREATE TABLE __SCHEMA__.collections (
    slug              text PRIMARY KEY,
    name              text NOT NULL,
    description       text NOT NULL,
    full_description  text NOT NULL,
    models            jsonb NOT NULL,
    defined_at        timestamptz NOT NULL
);
