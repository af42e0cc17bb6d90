-- A batch of lifecycle events is written without row locks, in one statement that applies only if each row it
-- folded onto is still as it was read (same xmin) and each event is tracked now for the first time. When that is
-- not so, this fails the statement whole (plain SQL cannot) and the batch is applied again under row locks.
CREATE FUNCTION __SCHEMA__.require_applied(applied boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT applied THEN
        RAISE EXCEPTION 'read model rows changed since they were read, or an event was tracked before'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$;
