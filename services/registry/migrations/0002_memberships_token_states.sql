-- Organization membership, administrators and token revocation (services/registry/projections.py).
ALTER TABLE __SCHEMA__.accounts ADD COLUMN admin boolean NOT NULL DEFAULT false;

ALTER TABLE __SCHEMA__.tokens ADD COLUMN revoked_at timestamptz;

CREATE TABLE __SCHEMA__.memberships (
    organization  text NOT NULL,
    member        text NOT NULL,
    added_at      timestamptz NOT NULL,
    PRIMARY KEY (organization, member)
);
CREATE INDEX memberships_by_member ON __SCHEMA__.memberships (member);
