-- Ledger operations as functions, so each request is one round trip and one transaction.
--
-- Refusals raise with SQLSTATE P0001, MESSAGE = a stable error code (insufficient_points,
-- unknown_member, ...), DETAIL = a JSON object of details and HINT = a sentence for people.
-- The service maps them to HTTP in one place.

CREATE FUNCTION points.refuse(p_code text, p_hint text, p_details jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = p_code, DETAIL = p_details::text,
                          HINT = p_hint;
END $$;

CREATE FUNCTION points.emit(p_tenant text, p_type text, p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
    VALUES ('points', p_tenant, p_type,
            convert_to((jsonb_build_object('type', p_type) || jsonb_strip_nulls(p_payload))::text,
                       'UTF8'));
$$;

-- The member's row, locked; NULL fields when the member does not exist and p_create is false.
CREATE FUNCTION points.lock_member(p_tenant text, p_member text, p_create boolean)
RETURNS points.members LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
BEGIN
    IF p_create THEN
        INSERT INTO points.members (tenant_id, member_id) VALUES (p_tenant, p_member)
        ON CONFLICT DO NOTHING;
    END IF;
    SELECT * INTO m FROM points.members
    WHERE tenant_id = p_tenant AND member_id = p_member FOR UPDATE;
    RETURN m;
END $$;

-- Points in lots that have expired but were not swept yet: counted in members.available until
-- the sweep, never available to spend.
CREATE FUNCTION points.expired_unswept(p_tenant text, p_member text, p_now timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(remaining - held), 0)::bigint FROM points.lots
    WHERE tenant_id = p_tenant AND member_id = p_member AND remaining > 0
      AND expires_at <= p_now;
$$;

-- Take p_amount from live lots, first-expiring first (lots whose ref is p_prefer_ref first).
-- p_mode 'hold' reserves (lots.held), 'spend' consumes (lots.remaining). Returns the allocation
-- [{"lot_id": .., "points": ..}]. The caller holds the member lock and checked the balance.
CREATE FUNCTION points.take_from_lots(p_tenant text, p_member text, p_amount bigint,
                                      p_now timestamptz, p_mode text,
                                      p_prefer_ref text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    lot record;
    v_left bigint := p_amount;
    v_take bigint;
    v_alloc jsonb := '[]';
BEGIN
    FOR lot IN
        SELECT l.lot_id, l.remaining - l.held AS free FROM points.lots l
        WHERE l.tenant_id = p_tenant AND l.member_id = p_member AND l.remaining > 0
          AND l.expires_at > p_now AND l.remaining > l.held
        ORDER BY (l.source = 'event' AND l.ref = p_prefer_ref) DESC, l.expires_at, l.lot_id
    LOOP
        EXIT WHEN v_left = 0;
        v_take := least(lot.free, v_left);
        IF p_mode = 'hold' THEN
            UPDATE points.lots SET held = held + v_take
            WHERE tenant_id = p_tenant AND member_id = p_member AND lot_id = lot.lot_id;
        ELSE
            UPDATE points.lots SET remaining = remaining - v_take
            WHERE tenant_id = p_tenant AND member_id = p_member AND lot_id = lot.lot_id;
        END IF;
        v_alloc := v_alloc || jsonb_build_object('lot_id', lot.lot_id, 'points', v_take);
        v_left := v_left - v_take;
    END LOOP;
    IF v_left > 0 THEN
        RAISE EXCEPTION 'ledger invariant: live lots of %/% do not cover % points',
            p_tenant, p_member, p_amount;
    END IF;
    RETURN v_alloc;
END $$;

-- The rule for an action: the tenant's own, else the built-in default.
CREATE FUNCTION points.rule_for(p_tenant text, p_action text)
RETURNS TABLE (points int, points_per_unit int, unit_cents int, limits jsonb,
               expires_after_days int, enabled boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.points, r.points_per_unit, r.unit_cents, r.limits, r.expires_after_days, r.enabled
    FROM points.rules r WHERE r.tenant_id = p_tenant AND r.action = p_action
    UNION ALL
    SELECT d.points, d.points_per_unit, d.unit_cents, d.limits, d.expires_after_days, d.enabled
    FROM points.default_rules d
    WHERE d.action = p_action
      AND NOT EXISTS (SELECT 1 FROM points.rules r
                      WHERE r.tenant_id = p_tenant AND r.action = p_action)
    LIMIT 1;
$$;

-- First day of the cap period containing p_local (a local time of the tenant's zone).
CREATE FUNCTION points.period_start(p_period text, p_local timestamp)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
        WHEN 'day' THEN p_local::date
        WHEN 'week' THEN date_trunc('week', p_local)::date
        WHEN 'month' THEN date_trunc('month', p_local)::date
        ELSE DATE '1970-01-01'
    END;
$$;

-- One earning event, idempotent by event id. Returns the HTTP status and body to answer with:
-- 201 and the stored body (first time or replay), 409 with a NULL body for an event id reused
-- with another request, 422 with a NULL body for an unknown or disabled action (nothing stored).
CREATE FUNCTION points.record_event(
    p_tenant text, p_event_id text, p_fingerprint bytea, p_member text, p_action text,
    p_occurred_at timestamptz, p_amount_cents bigint, p_attributes jsonb, p_now timestamptz)
RETURNS TABLE (status_code int, body bytea, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_rule record;
    v_stored record;
    v_tz text;
    m points.members;
    v_local timestamp;
    v_limit jsonb;
    v_start date;
    v_used record;
    v_points bigint;
    v_award bigint;
    v_expires timestamptz;
    v_status text;
    v_body bytea;
BEGIN
    SELECT i.fingerprint, i.status_code, i.body INTO v_stored FROM fuli.idempotency i
    WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
    IF FOUND THEN
        IF v_stored.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 409, NULL::bytea, true;
        ELSE
            RETURN QUERY SELECT v_stored.status_code, v_stored.body, true;
        END IF;
        RETURN;
    END IF;

    SELECT * INTO v_rule FROM points.rule_for(p_tenant, p_action);
    IF NOT FOUND OR NOT v_rule.enabled THEN
        RETURN QUERY SELECT 422, NULL::bytea, false;
        RETURN;
    END IF;

    -- Claim the id; a concurrent request with the same id waits here for us to commit.
    INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
    VALUES (p_tenant, 'points.events', p_event_id, p_fingerprint) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.fingerprint, i.status_code, i.body INTO v_stored FROM fuli.idempotency i
        WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
        IF v_stored.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 409, NULL::bytea, true;
        ELSE
            RETURN QUERY SELECT v_stored.status_code, v_stored.body, true;
        END IF;
        RETURN;
    END IF;

    SELECT t.time_zone INTO v_tz FROM fuli.tenants t WHERE t.tenant_id = p_tenant;
    m := points.lock_member(p_tenant, p_member, true);

    -- Computed in numeric and bounded, so no rule, amount and multiplier can overflow.
    v_points := least(floor(
        (v_rule.points + CASE WHEN v_rule.unit_cents IS NOT NULL AND p_amount_cents IS NOT NULL
                              THEN (p_amount_cents / v_rule.unit_cents)::numeric * v_rule.points_per_unit
                              ELSE 0 END)
        * m.earn_multiplier), 1000000000)::bigint;
    v_award := v_points;

    -- Caps: the member row is locked, so the usage read here is exact.
    v_local := p_occurred_at AT TIME ZONE coalesce(v_tz, 'Asia/Shanghai');
    FOR v_limit IN SELECT value FROM jsonb_array_elements(v_rule.limits) LOOP
        v_start := points.period_start(v_limit->>'period', v_local);
        SELECT u.events, u.points INTO v_used FROM points.cap_usage u
        WHERE u.tenant_id = p_tenant AND u.member_id = p_member AND u.action = p_action
          AND u.period = v_limit->>'period' AND u.period_start = v_start;
        IF v_limit ? 'max_events'
           AND coalesce(v_used.events, 0) >= (v_limit->>'max_events')::int THEN
            v_award := 0;
        END IF;
        IF v_limit ? 'max_points' THEN
            v_award := least(v_award,
                             greatest((v_limit->>'max_points')::bigint - coalesce(v_used.points, 0), 0));
        END IF;
    END LOOP;

    IF v_award > 0 THEN
        FOR v_limit IN SELECT value FROM jsonb_array_elements(v_rule.limits) LOOP
            INSERT INTO points.cap_usage AS u (tenant_id, member_id, action, period, period_start,
                                               events, points)
            VALUES (p_tenant, p_member, p_action, v_limit->>'period',
                    points.period_start(v_limit->>'period', v_local), 1, v_award)
            ON CONFLICT (tenant_id, member_id, action, period, period_start)
            DO UPDATE SET events = u.events + 1, points = u.points + EXCLUDED.points;
        END LOOP;
        v_expires := p_occurred_at + make_interval(days => v_rule.expires_after_days);
        INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
        VALUES (p_tenant, p_member, v_award, v_award, v_expires, 'event', p_event_id);
        UPDATE points.members SET available = available + v_award,
                                  lifetime_earned = lifetime_earned + v_award,
                                  spend_cents = spend_cents + coalesce(p_amount_cents, 0)
        WHERE tenant_id = p_tenant AND member_id = p_member RETURNING * INTO m;
        INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                      available_after, held_after, ref, at)
        VALUES (p_tenant, p_member, 'earn', 'issuance', 'available', v_award, m.available, m.held,
                p_event_id, p_now);
        PERFORM points.emit(p_tenant, 'PointsAwarded', jsonb_build_object(
            'member_id', p_member, 'points', v_award, 'source', 'event', 'ref', p_event_id,
            'action', p_action, 'occurred_at', p_occurred_at, 'expires_at', v_expires));
    ELSIF coalesce(p_amount_cents, 0) > 0 THEN
        UPDATE points.members SET spend_cents = spend_cents + p_amount_cents
        WHERE tenant_id = p_tenant AND member_id = p_member RETURNING * INTO m;
    END IF;

    INSERT INTO points.events (tenant_id, event_id, member_id, action, occurred_at, amount_cents,
                               attributes, points, capped_points, recorded_at)
    VALUES (p_tenant, p_event_id, p_member, p_action, p_occurred_at, p_amount_cents,
            p_attributes, v_award, v_points - v_award, p_now);

    PERFORM points.emit(p_tenant, 'ActionRecorded', jsonb_build_object(
        'member_id', p_member, 'event_id', p_event_id, 'action', p_action,
        'occurred_at', p_occurred_at, 'amount_cents', p_amount_cents,
        'attributes', coalesce(p_attributes, '{}'::jsonb), 'points', v_award));
    IF coalesce(p_amount_cents, 0) > 0 THEN
        PERFORM points.emit(p_tenant, 'PurchaseRecorded', jsonb_build_object(
            'member_id', p_member, 'event_id', p_event_id, 'amount_cents', p_amount_cents,
            'occurred_at', p_occurred_at, 'attributes', coalesce(p_attributes, '{}'::jsonb)));
    END IF;

    v_status := CASE WHEN v_award < v_points THEN 'capped' ELSE 'awarded' END;
    -- Same shape and field order as proto.points.EventResult (a test holds them together).
    v_body := convert_to(format(
        '{"event_id":%s,"member_id":%s,"status":%s,"points":%s,"capped_points":%s,"balance":%s}',
        to_json(p_event_id), to_json(p_member), to_json(v_status), v_award, v_points - v_award,
        m.available - points.expired_unswept(p_tenant, p_member, p_now)), 'UTF8');
    UPDATE fuli.idempotency i SET status_code = 201, body = v_body
    WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
    RETURN QUERY SELECT 201, v_body, false;
END $$;

-- Many events in one transaction (group commit), in member order so that concurrent batches
-- lock members in the same order. Results come back with each item's position.
CREATE FUNCTION points.record_events(
    p_tenant text, p_event_ids text[], p_fingerprints bytea[], p_members text[],
    p_actions text[], p_occurred_at timestamptz[], p_amounts bigint[], p_attributes jsonb[],
    p_now timestamptz)
RETURNS TABLE (ord int, status_code int, body bytea, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    item record;
    r record;
BEGIN
    FOR item IN
        SELECT t.ord::int AS ord, t.event_id, t.fingerprint, t.member_id, t.action,
               t.occurred_at, t.amount, t.attributes
        FROM unnest(p_event_ids, p_fingerprints, p_members, p_actions, p_occurred_at, p_amounts,
                    p_attributes)
             WITH ORDINALITY AS t(event_id, fingerprint, member_id, action, occurred_at, amount,
                                  attributes, ord)
        ORDER BY t.member_id, t.ord
    LOOP
        SELECT * INTO r FROM points.record_event(p_tenant, item.event_id, item.fingerprint,
                                                 item.member_id, item.action, item.occurred_at,
                                                 item.amount, item.attributes, p_now);
        RETURN QUERY SELECT item.ord, r.status_code, r.body, r.replayed;
    END LOOP;
END $$;

-- Lock a member who is about to spend p_points; refuse unknown members and short balances.
-- Returns the live available balance before the spend.
CREATE FUNCTION points.lock_spender(p_tenant text, p_member text, p_points bigint,
                                    p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
    v_live bigint;
BEGIN
    m := points.lock_member(p_tenant, p_member, false);
    IF m.member_id IS NULL THEN
        PERFORM points.refuse('unknown_member', 'no such member', jsonb_build_object('member_id', p_member));
    END IF;
    v_live := m.available - points.expired_unswept(p_tenant, p_member, p_now);
    IF v_live < p_points THEN
        PERFORM points.refuse('insufficient_points', 'not enough points available',
                              jsonb_build_object('available', v_live, 'requested', p_points));
    END IF;
    RETURN v_live;
END $$;

CREATE FUNCTION points.place_hold(p_tenant text, p_hold_id text, p_member text, p_points bigint,
                                  p_reason text, p_expires_in_s int, p_now timestamptz)
RETURNS TABLE (available bigint, held bigint, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
    v_live bigint;
    v_alloc jsonb;
    v_expires timestamptz := p_now + make_interval(secs => p_expires_in_s);
BEGIN
    v_live := points.lock_spender(p_tenant, p_member, p_points, p_now);
    v_alloc := points.take_from_lots(p_tenant, p_member, p_points, p_now, 'hold');
    UPDATE points.members SET available = points.members.available - p_points,
                              held = points.members.held + p_points
    WHERE tenant_id = p_tenant AND member_id = p_member RETURNING * INTO m;
    INSERT INTO points.holds (tenant_id, hold_id, member_id, points, reason, allocations,
                              expires_at, created_at)
    VALUES (p_tenant, p_hold_id, p_member, p_points, p_reason, v_alloc, v_expires, p_now);
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_member, 'hold', 'available', 'held', p_points, m.available, m.held,
            p_hold_id, p_now);
    RETURN QUERY SELECT v_live - p_points, m.held, v_expires;
END $$;

-- Capture, void or expire a pending hold. p_action: 'capture', 'void' or 'expire' (the worker).
CREATE FUNCTION points.settle_hold(p_tenant text, p_hold_id text, p_action text,
                                   p_now timestamptz)
RETURNS TABLE (member_id text, points bigint, status text, available bigint, held bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_member text;
    h points.holds;
    m points.members;
    a record;
BEGIN
    SELECT x.member_id INTO v_member FROM points.holds x
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM points.refuse('unknown_hold', 'no such hold', jsonb_build_object('hold_id', p_hold_id));
    END IF;
    m := points.lock_member(p_tenant, v_member, false);
    SELECT * INTO h FROM points.holds x WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF h.status <> 'pending' THEN
        PERFORM points.refuse('hold_not_pending', 'the hold was already ' || h.status,
                              jsonb_build_object('status', h.status));
    END IF;
    IF p_action = 'capture' AND h.expires_at <= p_now THEN
        PERFORM points.refuse('hold_expired', 'the hold expired and can no longer be captured',
                              jsonb_build_object('expired_at', h.expires_at));
    END IF;
    FOR a IN SELECT * FROM jsonb_to_recordset(h.allocations) AS x(lot_id bigint, points bigint) LOOP
        IF p_action = 'capture' THEN
            UPDATE points.lots l SET remaining = l.remaining - a.points, held = l.held - a.points
            WHERE l.tenant_id = p_tenant AND l.member_id = v_member AND l.lot_id = a.lot_id;
        ELSE
            UPDATE points.lots l SET held = l.held - a.points
            WHERE l.tenant_id = p_tenant AND l.member_id = v_member AND l.lot_id = a.lot_id;
        END IF;
    END LOOP;
    IF p_action = 'capture' THEN
        UPDATE points.members x SET held = x.held - h.points, spent = x.spent + h.points
        WHERE x.tenant_id = p_tenant AND x.member_id = v_member RETURNING * INTO m;
        INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                      available_after, held_after, ref, at)
        VALUES (p_tenant, v_member, 'capture', 'held', 'redemption', h.points, m.available, m.held,
                p_hold_id, p_now);
        PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
            'member_id', v_member, 'points', h.points, 'kind', 'capture', 'ref', p_hold_id,
            'reason', h.reason, 'spent_at', p_now));
    ELSE
        UPDATE points.members x SET held = x.held - h.points, available = x.available + h.points
        WHERE x.tenant_id = p_tenant AND x.member_id = v_member RETURNING * INTO m;
        INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                      available_after, held_after, ref, at)
        VALUES (p_tenant, v_member, 'void', 'held', 'available', h.points, m.available, m.held,
                p_hold_id, p_now);
    END IF;
    UPDATE points.holds x
    SET status = CASE p_action WHEN 'capture' THEN 'captured' WHEN 'void' THEN 'voided'
                               ELSE 'expired' END,
        resolved_at = p_now
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id
    RETURNING x.status INTO h.status;
    RETURN QUERY SELECT v_member, h.points, h.status,
                        m.available - points.expired_unswept(p_tenant, v_member, p_now), m.held;
END $$;

CREATE FUNCTION points.debit(p_tenant text, p_debit_id text, p_member text, p_points bigint,
                             p_reason text, p_now timestamptz)
RETURNS TABLE (available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
    v_live bigint;
BEGIN
    v_live := points.lock_spender(p_tenant, p_member, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_member, p_points, p_now, 'spend');
    UPDATE points.members x SET available = x.available - p_points, spent = x.spent + p_points
    WHERE x.tenant_id = p_tenant AND x.member_id = p_member RETURNING * INTO m;
    INSERT INTO points.debits (tenant_id, debit_id, member_id, points, reason, at)
    VALUES (p_tenant, p_debit_id, p_member, p_points, p_reason, p_now);
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_member, 'debit', 'available', 'redemption', p_points, m.available, m.held,
            p_debit_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
        'member_id', p_member, 'points', p_points, 'kind', 'debit', 'ref', p_debit_id,
        'reason', p_reason, 'spent_at', p_now));
    RETURN QUERY SELECT v_live - p_points;
END $$;

-- Refund of an event: claw back its points (pro rata for a partial refund of a purchase) from
-- what the member has available, reporting the shortfall, and reduce the member's spend.
CREATE FUNCTION points.reverse_event(p_tenant text, p_reversal_id text, p_event_id text,
                                     p_amount_cents bigint, p_now timestamptz)
RETURNS TABLE (member_id text, refunded_cents bigint, points bigint, clawed_back bigint,
               shortfall bigint, available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_member text;
    e points.events;
    m points.members;
    v_refund bigint := 0;
    v_claw bigint;
    v_live bigint;
    v_taken bigint;
BEGIN
    SELECT x.member_id INTO v_member FROM points.events x
    WHERE x.tenant_id = p_tenant AND x.event_id = p_event_id;
    IF NOT FOUND THEN
        PERFORM points.refuse('unknown_event', 'no such event', jsonb_build_object('event_id', p_event_id));
    END IF;
    m := points.lock_member(p_tenant, v_member, false);
    SELECT * INTO e FROM points.events x WHERE x.tenant_id = p_tenant AND x.event_id = p_event_id;
    IF coalesce(e.amount_cents, 0) = 0 THEN
        IF p_amount_cents IS NOT NULL THEN
            PERFORM points.refuse('amount_not_refundable',
                                  'this event has no amount; reverse it whole, without amount_cents',
                                  jsonb_build_object('field', 'amount_cents'));
        END IF;
        IF e.clawed_points >= e.points AND e.points > 0 OR e.refunded_cents > 0 THEN
            PERFORM points.refuse('already_reversed', 'the event was already reversed in full', '{}');
        END IF;
        v_claw := e.points - e.clawed_points;
    ELSE
        v_refund := coalesce(p_amount_cents, e.amount_cents - e.refunded_cents);
        IF v_refund <= 0 OR e.refunded_cents + v_refund > e.amount_cents THEN
            PERFORM points.refuse('reversal_exceeds_original',
                                  'the refund is more than what is left of the original amount',
                                  jsonb_build_object('refundable_cents', e.amount_cents - e.refunded_cents));
        END IF;
        -- Cumulative rounding: partial refunds that add up to the whole claw back every point.
        v_claw := (e.points * (e.refunded_cents + v_refund)) / e.amount_cents
                  - (e.points * e.refunded_cents) / e.amount_cents;
    END IF;
    v_live := m.available - points.expired_unswept(p_tenant, v_member, p_now);
    v_taken := least(v_claw, v_live);
    IF v_taken > 0 THEN
        PERFORM points.take_from_lots(p_tenant, v_member, v_taken, p_now, 'spend', p_event_id);
    END IF;
    UPDATE points.members x SET available = x.available - v_taken, reversed = x.reversed + v_taken,
                                spend_cents = x.spend_cents - v_refund
    WHERE x.tenant_id = p_tenant AND x.member_id = v_member RETURNING * INTO m;
    IF v_taken > 0 THEN
        INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                      available_after, held_after, ref, at)
        VALUES (p_tenant, v_member, 'reversal', 'available', 'issuance', v_taken, m.available,
                m.held, p_reversal_id, p_now);
    END IF;
    UPDATE points.events x SET refunded_cents = x.refunded_cents + v_refund,
                               clawed_points = x.clawed_points + v_claw
    WHERE x.tenant_id = p_tenant AND x.event_id = p_event_id;
    INSERT INTO points.reversals (tenant_id, reversal_id, event_id, member_id, amount_cents,
                                  points, taken, at)
    VALUES (p_tenant, p_reversal_id, p_event_id, v_member, v_refund, v_claw, v_taken, p_now);
    IF v_claw > 0 THEN
        PERFORM points.emit(p_tenant, 'PointsReversed', jsonb_build_object(
            'member_id', v_member, 'event_id', p_event_id, 'reversal_id', p_reversal_id,
            'points', v_claw, 'clawed_back', v_taken, 'shortfall', v_claw - v_taken,
            'reversed_at', p_now));
    END IF;
    IF v_refund > 0 THEN
        PERFORM points.emit(p_tenant, 'PurchaseReversed', jsonb_build_object(
            'member_id', v_member, 'event_id', p_event_id, 'reversal_id', p_reversal_id,
            'amount_cents', v_refund, 'occurred_at', e.occurred_at, 'reversed_at', p_now));
    END IF;
    RETURN QUERY SELECT v_member, v_refund, v_claw, v_taken, v_claw - v_taken,
                        m.available - points.expired_unswept(p_tenant, v_member, p_now);
END $$;

-- Bulk issuance, all or nothing. Members are locked in member_id order.
CREATE FUNCTION points.apply_grant(p_tenant text, p_grant_id text, p_key_id text, p_reason text,
                                   p_members text[], p_points bigint[], p_expires timestamptz[],
                                   p_default_days int, p_now timestamptz)
RETURNS TABLE (item_count int, total_points bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_total bigint;
BEGIN
    INSERT INTO points.members (tenant_id, member_id)
    SELECT DISTINCT p_tenant, x FROM unnest(p_members) AS x ORDER BY 2
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM points.members x
    WHERE x.tenant_id = p_tenant AND x.member_id = ANY (p_members)
    ORDER BY x.member_id FOR UPDATE;

    CREATE TEMP TABLE IF NOT EXISTS grant_items (
        ord bigint, member_id text, points bigint, expires_at timestamptz
    ) ON COMMIT DROP;
    TRUNCATE grant_items;
    INSERT INTO grant_items
    SELECT t.ord, t.member_id, t.points,
           coalesce(t.expires_at, p_now + make_interval(days => p_default_days))
    FROM unnest(p_members, p_points, p_expires) WITH ORDINALITY AS t(member_id, points, expires_at, ord);

    INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
    SELECT p_tenant, g.member_id, g.points, g.points, g.expires_at, 'grant', p_grant_id
    FROM grant_items g ORDER BY g.ord;

    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    SELECT p_tenant, g.member_id, 'grant', 'issuance', 'available', g.points,
           m.available + sum(g.points) OVER (PARTITION BY g.member_id ORDER BY g.ord),
           m.held, p_grant_id, p_now
    FROM grant_items g
    JOIN points.members m ON m.tenant_id = p_tenant AND m.member_id = g.member_id
    ORDER BY g.ord;

    UPDATE points.members m SET available = m.available + s.total,
                                lifetime_earned = m.lifetime_earned + s.total
    FROM (SELECT g.member_id, sum(g.points) AS total FROM grant_items g GROUP BY g.member_id) s
    WHERE m.tenant_id = p_tenant AND m.member_id = s.member_id;

    INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
    SELECT 'points', p_tenant, 'PointsAwarded',
           convert_to(jsonb_build_object('type', 'PointsAwarded', 'member_id', g.member_id,
                                         'points', g.points, 'source', 'grant', 'ref', p_grant_id,
                                         'occurred_at', p_now, 'expires_at', g.expires_at)::text,
                      'UTF8')
    FROM grant_items g ORDER BY g.ord;

    SELECT sum(g.points) INTO v_total FROM grant_items g;
    INSERT INTO points.grant_audit (tenant_id, grant_id, key_id, reason, item_count, total_points, at)
    VALUES (p_tenant, p_grant_id, p_key_id, p_reason, cardinality(p_members), v_total, p_now);
    RETURN QUERY SELECT cardinality(p_members), v_total;
END $$;

-- Move what is left of expired lots to the expiry account, for up to p_limit members.
-- Returns how many members were swept.
CREATE FUNCTION points.sweep_expired_lots(p_now timestamptz, p_limit int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v record;
    m points.members;
    v_points bigint;
    v_count int := 0;
BEGIN
    FOR v IN
        SELECT DISTINCT l.tenant_id, l.member_id FROM points.lots l
        WHERE l.expires_at <= p_now AND l.remaining > l.held
        ORDER BY l.tenant_id, l.member_id LIMIT p_limit
    LOOP
        m := points.lock_member(v.tenant_id, v.member_id, false);
        SELECT coalesce(sum(l.remaining - l.held), 0) INTO v_points FROM points.lots l
        WHERE l.tenant_id = v.tenant_id AND l.member_id = v.member_id
          AND l.expires_at <= p_now AND l.remaining > l.held;
        UPDATE points.lots l SET remaining = l.held
        WHERE l.tenant_id = v.tenant_id AND l.member_id = v.member_id
          AND l.expires_at <= p_now AND l.remaining > l.held;
        IF v_points > 0 THEN
            UPDATE points.members x SET available = x.available - v_points,
                                        expired = x.expired + v_points
            WHERE x.tenant_id = v.tenant_id AND x.member_id = v.member_id RETURNING * INTO m;
            INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account,
                                          amount, available_after, held_after, ref, at)
            VALUES (v.tenant_id, v.member_id, 'expiry', 'available', 'expiry', v_points,
                    m.available, m.held, 'expiry:' || to_char(p_now AT TIME ZONE 'UTC',
                                                              'YYYY-MM-DD"T"HH24:MI:SS"Z"'), p_now);
            PERFORM points.emit(v.tenant_id, 'PointsExpired', jsonb_build_object(
                'member_id', v.member_id, 'points', v_points, 'expired_at', p_now));
        END IF;
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END $$;

-- Void pending holds past their expiry, up to p_limit; returns how many.
CREATE FUNCTION points.expire_holds(p_now timestamptz, p_limit int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    h record;
    v_count int := 0;
BEGIN
    FOR h IN
        SELECT x.tenant_id, x.hold_id FROM points.holds x
        WHERE x.status = 'pending' AND x.expires_at <= p_now
        ORDER BY x.tenant_id, x.member_id LIMIT p_limit
    LOOP
        BEGIN
            PERFORM points.settle_hold(h.tenant_id, h.hold_id, 'expire', p_now);
            v_count := v_count + 1;
        EXCEPTION WHEN raise_exception THEN
            NULL;  -- settled by a capture or void since it was listed
        END;
    END LOOP;
    RETURN v_count;
END $$;
