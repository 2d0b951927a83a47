-- Takes the event table in EXCLUSIVE mode through its owner's function (the
-- table-lock strategy; an application role needs no LOCK privilege).
SELECT {schema}.factos_lock_events_exclusive()
