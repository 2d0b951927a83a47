-- factos schema, version 3: the log is append-only, enforced by the database.
-- UPDATE, DELETE and TRUNCATE on the event table and its tag mirror are
-- rejected for every role (the least-privilege setup in the crate docs also
-- withholds those privileges). A maintenance session that must repair data
-- can bypass the triggers as a superuser with
-- `SET session_replication_role = replica`.

CREATE OR REPLACE FUNCTION factos_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'factos events are append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS factos_events_append_only ON factos_events;
CREATE TRIGGER factos_events_append_only
    BEFORE UPDATE OR DELETE ON factos_events
    FOR EACH ROW EXECUTE FUNCTION factos_reject_change();

DROP TRIGGER IF EXISTS factos_events_no_truncate ON factos_events;
CREATE TRIGGER factos_events_no_truncate
    BEFORE TRUNCATE ON factos_events
    FOR EACH STATEMENT EXECUTE FUNCTION factos_reject_change();

DROP TRIGGER IF EXISTS factos_event_tags_append_only ON factos_event_tags;
CREATE TRIGGER factos_event_tags_append_only
    BEFORE UPDATE OR DELETE ON factos_event_tags
    FOR EACH ROW EXECUTE FUNCTION factos_reject_change();

DROP TRIGGER IF EXISTS factos_event_tags_no_truncate ON factos_event_tags;
CREATE TRIGGER factos_event_tags_no_truncate
    BEFORE TRUNCATE ON factos_event_tags
    FOR EACH STATEMENT EXECUTE FUNCTION factos_reject_change();
