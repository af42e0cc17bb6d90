-- Notifications carry the highest outbox position the statement inserted, so a relay can ignore the ones
-- for messages it has already published (its own commits wake it directly).
CREATE OR REPLACE FUNCTION __SCHEMA__.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('__SCHEMA___outbox', (SELECT max(position)::text FROM inserted));
    RETURN NULL;
END
$$;

DROP TRIGGER outbox_notify ON __SCHEMA__.outbox;

CREATE TRIGGER outbox_notify AFTER INSERT ON __SCHEMA__.outbox REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION __SCHEMA__.notify_outbox();
