-- The console's figures read a window of recent time: transfers by `at` (GET /stats/daily) and
-- events by `recorded_at` (GET /stats/hourly, /stats/overview). Without an index each read
-- would go through all of a tenant's history. Both tables grow in time order (rows are written
-- at the time they carry and transfers are never updated), which is what a BRIN index needs:
-- it finds the recent blocks for a few pages of index and costs the hot path of earning
-- next to nothing, where a B-tree on (tenant_id, at) would add an insert per row.
CREATE INDEX transfers_at_brin ON points.transfers USING brin (at);
CREATE INDEX events_recorded_at_brin ON points.events USING brin (recorded_at);
