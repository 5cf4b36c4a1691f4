-- Posting to members and locking them take arrays of any length. Planned for the values at
-- hand, their statements look cheaper (the planner knows how many members there are) than a
-- plan for any number, so PostgreSQL made a new plan at every call: under a load of draws,
-- more time went into planning these statements than into running them
-- (loadtests/HISTORY.md). One plan a connection, made for some members, serves every call.
ALTER FUNCTION points.post_transfers(text, text[], bigint[], text, text, text, text, timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION points.lock_members(text, text[], boolean)
    SET plan_cache_mode = force_generic_plan;
