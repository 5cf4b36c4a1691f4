-- A group of earning events is recorded with one statement per table instead of one call of
-- points.record_event per event. The loop cost PostgreSQL about as much per grouped event as a
-- transaction of its own (some fifteen statements, each planned and run for one row), so group
-- commit saved commits but little work.
--
-- The answers and every row written are those of calling points.record_event for each event in
-- (member_id, position) order, which is what points.record_events did before:
--
-- * an id stored before is answered from what is stored (a replay, or idempotency_conflict);
-- * an unknown or disabled action, or a per-unit rule without an amount, is refused, nothing
--   stored;
-- * the rest claim their ids with one INSERT in id order (so two groups claiming the same ids
--   never wait on each other in a cycle); an id another transaction claimed meanwhile is
--   answered from what it stored;
-- * their members are created and locked with one statement, in member order;
-- * lots, transfers (each with the member's balances after it), events, outbox rows and the
--   stored answers are written as sets, and each member's row moves once.
--
-- Events whose answer depends on the events before them in the group are still recorded one
-- at a time by points.record_event, after every member of the group is locked: an id that
-- appears twice in the group, and every event of a member with an event under a rule with caps
-- (the cap left depends on the awards before it). Outbox rows of different members may come in
-- another order than before; each member's rows keep theirs.
CREATE OR REPLACE FUNCTION points.record_events(
    p_tenant text, p_event_ids text[], p_fingerprints bytea[], p_members text[],
    p_actions text[], p_occurred_at timestamptz[], p_amounts bigint[], p_attributes jsonb[],
    p_now timestamptz)
RETURNS TABLE (ord int, refused text, body bytea, replayed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c record;
    v_set int[] := '{}';
    v_one_by_one int[] := '{}';
    v_claimed int[];
    v_claimed_rows tid[];
    v_members text[];
    v_member_rows tid[];
BEGIN
    -- Every lookup in a big table is a probe by its whole key from a LATERAL subquery (or by
    -- row address): a join would let the planner scan a tenant's whole index when the column
    -- statistics are older than the table's growth (seen on a fresh database under load:
    -- 200 events took 130 ms, and more with every group).
    FOR c IN
        WITH t AS (
            SELECT x.ord::int AS ord, x.event_id, x.fingerprint, x.member_id, x.action, x.amount,
                   count(*) OVER (PARTITION BY x.event_id) > 1 AS repeated
            FROM unnest(p_event_ids, p_fingerprints, p_members, p_actions, p_amounts)
                 WITH ORDINALITY AS x(event_id, fingerprint, member_id, action, amount, ord)),
        classified AS (
            SELECT t.ord, t.member_id, s.fingerprint = t.fingerprint AS same_request, s.body,
                   CASE WHEN s.fingerprint IS NOT NULL THEN 'stored'
                        WHEN t.repeated THEN 'one_by_one'
                        WHEN r.enabled IS NOT TRUE THEN 'unknown_action'
                        WHEN r.points_per_unit > 0 AND t.amount IS NULL THEN 'amount_required'
                        WHEN jsonb_array_length(r.limits) > 0 THEN 'one_by_one'
                        ELSE 'set' END AS how
            FROM t
            LEFT JOIN LATERAL (
                SELECT i.fingerprint, i.body FROM fuli.idempotency i
                WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = t.event_id
                LIMIT 1) s ON true
            LEFT JOIN LATERAL points.rule_for(p_tenant, t.action) r ON true)
        SELECT k.ord, k.same_request, k.body,
               CASE WHEN k.how = 'set' AND bool_or(k.how = 'one_by_one')
                                               OVER (PARTITION BY k.member_id)
                    THEN 'one_by_one' ELSE k.how END AS how
        FROM classified k
    LOOP
        IF c.how = 'stored' THEN
            RETURN QUERY SELECT c.ord, CASE WHEN c.same_request THEN NULL
                                            ELSE 'idempotency_conflict' END,
                                CASE WHEN c.same_request THEN c.body END, true;
        ELSIF c.how IN ('unknown_action', 'amount_required') THEN
            RETURN QUERY SELECT c.ord, c.how, NULL::bytea, false;
        ELSIF c.how = 'one_by_one' THEN
            v_one_by_one := v_one_by_one || c.ord;
        ELSE
            v_set := v_set || c.ord;
        END IF;
    END LOOP;

    -- Claim the ids; one claimed by a transaction still running waits here for it to end.
    WITH claimed AS (
        INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
        SELECT p_tenant, 'points.events', x.event_id, x.fingerprint
        FROM unnest(p_event_ids, p_fingerprints) WITH ORDINALITY AS x(event_id, fingerprint, ord)
        WHERE x.ord = ANY (v_set)
        ORDER BY x.event_id
        ON CONFLICT DO NOTHING
        RETURNING key, ctid)
    SELECT coalesce(array_agg(x.ord::int), '{}'), coalesce(array_agg(k.ctid), '{}')
    INTO v_claimed, v_claimed_rows
    FROM unnest(p_event_ids) WITH ORDINALITY AS x(event_id, ord)
    JOIN claimed k ON k.key = x.event_id
    WHERE x.ord = ANY (v_set);

    RETURN QUERY
    SELECT x.ord::int, CASE WHEN s.fingerprint = x.fingerprint THEN NULL
                            ELSE 'idempotency_conflict' END,
           CASE WHEN s.fingerprint = x.fingerprint THEN s.body END, true
    FROM unnest(p_event_ids, p_fingerprints) WITH ORDINALITY AS x(event_id, fingerprint, ord)
    CROSS JOIN LATERAL (
        SELECT i.fingerprint, i.body FROM fuli.idempotency i
        WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = x.event_id
        LIMIT 1) s
    WHERE x.ord = ANY (v_set) AND NOT x.ord = ANY (v_claimed);

    -- Every member of the group is locked before anything is written, in one order: members of
    -- claimed events are created first; those of events recorded one by one are created (if
    -- need be) by points.record_event, as before.
    INSERT INTO points.members (tenant_id, member_id)
    SELECT DISTINCT p_tenant, x.member_id
    FROM unnest(p_members) WITH ORDINALITY AS x(member_id, ord)
    WHERE x.ord = ANY (v_claimed)
    ORDER BY 2
    ON CONFLICT DO NOTHING;
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}'),
           coalesce(array_agg(l.row ORDER BY x.member_id), '{}')
    INTO v_members, v_member_rows
    FROM (SELECT DISTINCT u.member_id
          FROM unnest(p_members) WITH ORDINALITY AS u(member_id, ord)
          WHERE u.ord = ANY (v_claimed) OR u.ord = ANY (v_one_by_one)
          ORDER BY 1) x
    CROSS JOIN LATERAL (
        SELECT m.ctid AS row FROM points.members m
        WHERE m.tenant_id = p_tenant AND m.member_id = x.member_id
        FOR UPDATE) l;

    RETURN QUERY
    WITH t AS (
        SELECT x.ord::int AS ord, x.event_id, x.member_id, x.action, x.occurred_at, x.amount,
               x.attributes
        FROM unnest(p_event_ids, p_members, p_actions, p_occurred_at, p_amounts, p_attributes)
             WITH ORDINALITY AS x(event_id, member_id, action, occurred_at, amount, attributes,
                                  ord)
        WHERE x.ord = ANY (v_claimed)),
    locked AS (
        SELECT l.member_id, l.row, m.available, m.held, m.earn_multiplier
        FROM unnest(v_members, v_member_rows) AS l(member_id, row)
        JOIN points.members m ON m.ctid = l.row
        WHERE l.member_id IN (SELECT t.member_id FROM t)),
    priced AS (
        -- Computed in numeric and bounded, as points.record_event does.
        SELECT t.*, m.available, m.held,
               least(floor(
                   (r.points + CASE WHEN r.unit_cents IS NOT NULL AND t.amount IS NOT NULL
                                    THEN (t.amount / r.unit_cents)::numeric * r.points_per_unit
                                    ELSE 0 END)
                   * m.earn_multiplier), 1000000000)::bigint AS award,
               t.occurred_at + make_interval(days => r.expires_after_days) AS expires_at
        FROM t
        JOIN locked m ON m.member_id = t.member_id
        CROSS JOIN LATERAL points.rule_for(p_tenant, t.action) r),
    ordered AS (
        -- A member's balance after each of its events; lots this group writes already expired
        -- (events long past) count as expired but not yet swept, as they would one by one.
        SELECT p.*, p.available + sum(p.award) OVER w AS available_after,
               sum(CASE WHEN p.expires_at <= p_now THEN p.award ELSE 0 END) OVER w AS new_unswept
        FROM priced p
        WINDOW w AS (PARTITION BY p.member_id ORDER BY p.ord)),
    unswept AS (
        SELECT m.member_id, points.expired_unswept(p_tenant, m.member_id, p_now) AS points
        FROM locked m),
    new_lots AS (
        INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
        SELECT p_tenant, o.member_id, o.award, o.award, o.expires_at, 'event', o.event_id
        FROM ordered o WHERE o.award > 0
        ORDER BY o.member_id, o.ord),
    new_transfers AS (
        INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account,
                                      amount, available_after, held_after, ref, at)
        SELECT p_tenant, o.member_id, 'earn', 'issuance', 'available', o.award,
               o.available_after, o.held, o.event_id, p_now
        FROM ordered o WHERE o.award > 0
        ORDER BY o.member_id, o.ord),
    moved AS (
        -- An earn moves issuance to available: available and lifetime_earned grow by the
        -- award (points.transfer_effect); a purchase adds its amount to spend either way.
        UPDATE points.members x SET
            available = x.available + g.award,
            lifetime_earned = x.lifetime_earned + g.award,
            spend_cents = x.spend_cents + g.spend
        FROM (SELECT m.row, sum(o.award)::bigint AS award,
                     sum(coalesce(o.amount, 0))::bigint AS spend
              FROM ordered o JOIN locked m ON m.member_id = o.member_id
              GROUP BY m.row) g
        WHERE x.ctid = g.row AND (g.award > 0 OR g.spend > 0)),
    new_events AS (
        INSERT INTO points.events (tenant_id, event_id, member_id, action, occurred_at,
                                   amount_cents, attributes, points, capped_points, recorded_at)
        SELECT p_tenant, o.event_id, o.member_id, o.action, o.occurred_at, o.amount,
               o.attributes, o.award, 0, p_now
        FROM ordered o
        ORDER BY o.member_id, o.ord),
    emitted AS (
        -- What points.emit writes, for each event in the order record_event emits them.
        INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
        SELECT 'points', p_tenant, e.type,
               convert_to((jsonb_build_object('type', e.type)
                           || jsonb_strip_nulls(e.payload))::text, 'UTF8')
        FROM ordered o
        CROSS JOIN LATERAL (VALUES
            (1, 'PointsAwarded', CASE WHEN o.award > 0 THEN jsonb_build_object(
                'member_id', o.member_id, 'points', o.award, 'source', 'event',
                'ref', o.event_id, 'action', o.action, 'occurred_at', o.occurred_at,
                'expires_at', o.expires_at) END),
            (2, 'ActionRecorded', jsonb_build_object(
                'member_id', o.member_id, 'event_id', o.event_id, 'action', o.action,
                'occurred_at', o.occurred_at, 'amount_cents', o.amount,
                'attributes', coalesce(o.attributes, '{}'::jsonb), 'points', o.award)),
            (3, 'PurchaseRecorded', CASE WHEN coalesce(o.amount, 0) > 0 THEN jsonb_build_object(
                'member_id', o.member_id, 'event_id', o.event_id, 'amount_cents', o.amount,
                'occurred_at', o.occurred_at,
                'attributes', coalesce(o.attributes, '{}'::jsonb)) END)
        ) AS e(n, type, payload)
        WHERE e.payload IS NOT NULL
        ORDER BY o.member_id, o.ord, e.n),
    answers AS (
        SELECT o.ord, o.event_id, convert_to(row_to_json(ROW(
                   o.event_id, o.member_id, 'awarded', o.award, 0::bigint,
                   o.available_after - u.points - o.new_unswept
               )::points.event_result)::text, 'UTF8') AS body
        FROM ordered o JOIN unswept u ON u.member_id = o.member_id),
    stored AS (
        UPDATE fuli.idempotency i SET status_code = 201, body = a.body
        FROM answers a
        JOIN unnest(v_claimed, v_claimed_rows) AS k(ord, row) ON k.ord = a.ord
        WHERE i.ctid = k.row)
    SELECT a.ord, NULL::text, a.body, false FROM answers a;

    FOR c IN
        SELECT x.ord::int AS ord, x.event_id, x.fingerprint, x.member_id, x.action,
               x.occurred_at, x.amount, x.attributes
        FROM unnest(p_event_ids, p_fingerprints, p_members, p_actions, p_occurred_at, p_amounts,
                    p_attributes)
             WITH ORDINALITY AS x(event_id, fingerprint, member_id, action, occurred_at, amount,
                                  attributes, ord)
        WHERE x.ord = ANY (v_one_by_one)
        ORDER BY x.member_id, x.ord
    LOOP
        RETURN QUERY
        SELECT c.ord, r.refused, r.body, r.replayed
        FROM points.record_event(p_tenant, c.event_id, c.fingerprint, c.member_id, c.action,
                                 c.occurred_at, c.amount, c.attributes, p_now) r;
    END LOOP;
END $$;
