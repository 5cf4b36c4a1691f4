-- The invariant check behind `fuli ledger check` and GET /points/v1/ledger/check: one row per
-- problem found, none when the ledger is sound.
CREATE FUNCTION points.ledger_problems(p_tenant text DEFAULT NULL)
RETURNS TABLE (tenant_id text, member_id text, problem text, detail jsonb)
LANGUAGE sql STABLE AS $$
    WITH flows AS (
        SELECT t.tenant_id, t.member_id,
               sum(CASE WHEN t.to_account = 'available' THEN t.amount
                        WHEN t.from_account = 'available' THEN -t.amount ELSE 0 END) AS available,
               sum(CASE WHEN t.to_account = 'held' THEN t.amount
                        WHEN t.from_account = 'held' THEN -t.amount ELSE 0 END) AS held
        FROM points.transfers t
        WHERE p_tenant IS NULL OR t.tenant_id = p_tenant
        GROUP BY t.tenant_id, t.member_id
    ),
    system_flows AS (
        SELECT t.tenant_id,
               sum(CASE WHEN t.to_account IN ('issuance', 'redemption', 'expiry') THEN t.amount ELSE 0 END)
             - sum(CASE WHEN t.from_account IN ('issuance', 'redemption', 'expiry') THEN t.amount ELSE 0 END)
               AS balance
        FROM points.transfers t
        WHERE p_tenant IS NULL OR t.tenant_id = p_tenant
        GROUP BY t.tenant_id
    ),
    members AS (
        SELECT * FROM points.members m WHERE p_tenant IS NULL OR m.tenant_id = p_tenant
    ),
    lots AS (
        SELECT l.tenant_id, l.member_id, sum(l.remaining) AS remaining, sum(l.held) AS held
        FROM points.lots l
        WHERE (p_tenant IS NULL OR l.tenant_id = p_tenant) AND l.remaining > 0
        GROUP BY l.tenant_id, l.member_id
    ),
    pending AS (
        SELECT h.tenant_id, h.member_id, sum(h.points) AS held
        FROM points.holds h
        WHERE (p_tenant IS NULL OR h.tenant_id = p_tenant) AND h.status = 'pending'
        GROUP BY h.tenant_id, h.member_id
    ),
    chain AS (
        SELECT t.tenant_id, t.member_id, t.transfer_id, t.available_after, t.held_after,
               lag(t.available_after, 1, 0::bigint) OVER w
                 + CASE WHEN t.to_account = 'available' THEN t.amount
                        WHEN t.from_account = 'available' THEN -t.amount ELSE 0 END AS expected_available,
               lag(t.held_after, 1, 0::bigint) OVER w
                 + CASE WHEN t.to_account = 'held' THEN t.amount
                        WHEN t.from_account = 'held' THEN -t.amount ELSE 0 END AS expected_held
        FROM points.transfers t
        WHERE p_tenant IS NULL OR t.tenant_id = p_tenant
        WINDOW w AS (PARTITION BY t.tenant_id, t.member_id ORDER BY t.transfer_id)
    ),
    earned AS (
        SELECT e.tenant_id, e.event_id, e.member_id, e.points,
               (SELECT count(*) FROM points.transfers t
                WHERE t.tenant_id = e.tenant_id AND t.member_id = e.member_id
                  AND t.kind = 'earn' AND t.ref = e.event_id) AS transfers,
               (SELECT coalesce(sum(t.amount), 0) FROM points.transfers t
                WHERE t.tenant_id = e.tenant_id AND t.member_id = e.member_id
                  AND t.kind = 'earn' AND t.ref = e.event_id) AS amount
        FROM points.events e
        WHERE p_tenant IS NULL OR e.tenant_id = p_tenant
    )
    SELECT m.tenant_id, m.member_id, 'balance_differs_from_transfers',
           jsonb_build_object('available', m.available, 'held', m.held,
                              'transfers_available', coalesce(f.available, 0),
                              'transfers_held', coalesce(f.held, 0))
    FROM members m LEFT JOIN flows f USING (tenant_id, member_id)
    WHERE m.available <> coalesce(f.available, 0) OR m.held <> coalesce(f.held, 0)
    UNION ALL
    SELECT m.tenant_id, m.member_id, 'balance_differs_from_lots',
           jsonb_build_object('available', m.available, 'held', m.held,
                              'lots_remaining', coalesce(l.remaining, 0), 'lots_held', coalesce(l.held, 0))
    FROM members m LEFT JOIN lots l USING (tenant_id, member_id)
    WHERE m.available + m.held <> coalesce(l.remaining, 0) OR m.held <> coalesce(l.held, 0)
    UNION ALL
    SELECT m.tenant_id, m.member_id, 'held_differs_from_pending_holds',
           jsonb_build_object('held', m.held, 'pending_holds', coalesce(p.held, 0))
    FROM members m LEFT JOIN pending p USING (tenant_id, member_id)
    WHERE m.held <> coalesce(p.held, 0)
    UNION ALL
    SELECT c.tenant_id, c.member_id, 'balance_after_chain_broken',
           jsonb_build_object('transfer_id', c.transfer_id, 'available_after', c.available_after,
                              'expected_available', c.expected_available,
                              'held_after', c.held_after, 'expected_held', c.expected_held)
    FROM chain c
    WHERE c.available_after <> c.expected_available OR c.held_after <> c.expected_held
    UNION ALL
    SELECT s.tenant_id, NULL, 'accounts_do_not_sum_to_zero',
           jsonb_build_object('members', coalesce(mm.total, 0), 'system', s.balance)
    FROM system_flows s
    LEFT JOIN (SELECT x.tenant_id, sum(x.available + x.held) AS total FROM members x
               GROUP BY x.tenant_id) mm USING (tenant_id)
    WHERE coalesce(mm.total, 0) + s.balance <> 0
    UNION ALL
    SELECT e.tenant_id, e.member_id, 'event_not_in_ledger_once',
           jsonb_build_object('event_id', e.event_id, 'points', e.points,
                              'earn_transfers', e.transfers, 'earned', e.amount)
    FROM earned e
    WHERE (e.points > 0 AND (e.transfers <> 1 OR e.amount <> e.points))
       OR (e.points = 0 AND e.transfers <> 0);
$$;
