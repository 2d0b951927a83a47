-- The checks of `append_checks.sql` alone (joined after them), for a large
-- batch that is then written with COPY in the same transaction: the caller
-- only copies when the checks passed. Referencing every CTE makes each run:
-- the events' keys are tried and the barrier is held shared from here to
-- commit, before COPY allocates positions.
-- Returns (locked, conflict, revision_conflict, current_revision, replayed).
SELECT locked.ok, checked.conflict, checked.revision_conflict, current.revision, replayed.yes
FROM replayed CROSS JOIN locked CROSS JOIN barrier CROSS JOIN checked CROSS JOIN current
