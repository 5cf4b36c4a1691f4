-- points.record_events reads the rows it locked or claimed by their addresses (`ctid = k.row`)
-- and its other lookups by key: never a whole table. Its plans are cached per connection, and a
-- plan made while the tables were small joined those addresses to a sequential scan of the
-- whole table, kept as the tables grew: on a bench database of 150,000 stored ids and 10,000
-- members, one group's statement spent 85 ms scanning fuli.idempotency and 2 ms scanning
-- points.members twice, and PostgreSQL's time per recorded event went from 0.37 ms to 0.64 ms
-- within one run. Without sequential scans the planner takes the row addresses (TID scans) and
-- the indexes, whatever it believes the tables' sizes to be.
ALTER FUNCTION points.record_events(text, text[], bytea[], text[], text[], timestamptz[],
                                    bigint[], jsonb[], timestamptz)
    SET enable_seqscan = off;
