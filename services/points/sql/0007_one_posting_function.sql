-- One rule of what a transfer does to a member, used by every ledger operation.
--
-- points.transfer_effect says how moving an amount between two accounts changes a member's
-- balances and counters. Counters follow the accounts:
--
--   from issuance   (earn, grant, move in)          lifetime_earned +
--   to redemption   (capture, debit, move out)      spent +
--   from redemption (refund)                        spent -
--   to expiry       (expiry sweep)                  expired +
--   to issuance     (reversal, retirement)          reversed +
--
-- so `lifetime_earned - reversed - spent - expired = available + held` holds after every post.
-- points.post_transfer posts one transfer of one member and returns the member's row;
-- points.post_transfers posts the same kind of transfer for many members in one statement each
-- (bulk grants). Both write every transfer with the member's balances after it.
-- The caller holds the member's lock; operations on several members lock them all first, in
-- member_id order (points.lock_members), so two operations never wait on each other.
--
-- points.record_event no longer answers with HTTP statuses: it returns a refusal code where it
-- refuses (`unknown_action`, `idempotency_conflict`; raising would abort a group of events) and
-- builds the stored body from a composite type whose fields are proto.points.EventResult's.

-- A set-returning SQL function, so that the planner inlines it into the statements using it.
CREATE FUNCTION points.transfer_effect(p_from text, p_to text, p_amount bigint)
RETURNS TABLE (available bigint, held bigint, lifetime_earned bigint, spent bigint,
               expired bigint, reversed bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_to = 'available' THEN p_amount
                WHEN p_from = 'available' THEN -p_amount ELSE 0 END,
           CASE WHEN p_to = 'held' THEN p_amount
                WHEN p_from = 'held' THEN -p_amount ELSE 0 END,
           CASE WHEN p_from = 'issuance' THEN p_amount ELSE 0 END,
           CASE WHEN p_to = 'redemption' THEN p_amount
                WHEN p_from = 'redemption' THEN -p_amount ELSE 0 END,
           CASE WHEN p_to = 'expiry' THEN p_amount ELSE 0 END,
           CASE WHEN p_to = 'issuance' THEN p_amount ELSE 0 END;
$$;

CREATE FUNCTION points.post_transfer(
    p_tenant text, p_member text, p_kind text, p_from text, p_to text, p_amount bigint,
    p_ref text, p_at timestamptz, p_spend_cents_change bigint DEFAULT 0)
RETURNS points.members LANGUAGE plpgsql AS $$
DECLARE
    m points.members;
BEGIN
    UPDATE points.members x SET
        available = x.available + e.available,
        held = x.held + e.held,
        lifetime_earned = x.lifetime_earned + e.lifetime_earned,
        spent = x.spent + e.spent,
        expired = x.expired + e.expired,
        reversed = x.reversed + e.reversed,
        spend_cents = x.spend_cents + p_spend_cents_change
    FROM points.transfer_effect(p_from, p_to, p_amount) e
    WHERE x.tenant_id = p_tenant AND x.member_id = p_member
    RETURNING x.* INTO m;
    IF NOT FOUND THEN
        -- A bug, not a refusal: callers lock (or create) the member first. Hence not P0001.
        RAISE EXCEPTION 'ledger invariant: no member %/% to post to', p_tenant, p_member
            USING ERRCODE = 'XX000';
    END IF;
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    VALUES (p_tenant, p_member, p_kind, p_from, p_to, p_amount, m.available, m.held, p_ref, p_at);
    RETURN m;
END $$;

-- p_amounts[i] to (or from) p_members[i], all with one kind, pair of accounts and ref. Transfers
-- are written in item order; a member's balances after each of its items are those before the
-- call plus the effects of its items so far.
CREATE FUNCTION points.post_transfers(
    p_tenant text, p_members text[], p_amounts bigint[], p_kind text, p_from text, p_to text,
    p_ref text, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_posted bigint;
BEGIN
    INSERT INTO points.transfers (tenant_id, member_id, kind, from_account, to_account, amount,
                                  available_after, held_after, ref, at)
    SELECT p_tenant, t.member_id, p_kind, p_from, p_to, t.amount,
           m.available + sum(e.available) OVER w, m.held + sum(e.held) OVER w, p_ref, p_at
    FROM unnest(p_members, p_amounts) WITH ORDINALITY AS t(member_id, amount, ord)
    CROSS JOIN LATERAL points.transfer_effect(p_from, p_to, t.amount) e
    JOIN points.members m ON m.tenant_id = p_tenant AND m.member_id = t.member_id
    WINDOW w AS (PARTITION BY t.member_id ORDER BY t.ord)
    ORDER BY t.ord;
    GET DIAGNOSTICS v_posted = ROW_COUNT;
    IF v_posted <> cardinality(p_members) THEN
        -- A bug, not a refusal: callers lock (or create) the members first. Hence not P0001.
        RAISE EXCEPTION 'ledger invariant: % of % items have no member of % to post to',
            cardinality(p_members) - v_posted, cardinality(p_members), p_tenant
            USING ERRCODE = 'XX000';
    END IF;
    -- The effect is linear in the amount, so a member's total moves its row once.
    UPDATE points.members x SET
        available = x.available + e.available,
        held = x.held + e.held,
        lifetime_earned = x.lifetime_earned + e.lifetime_earned,
        spent = x.spent + e.spent,
        expired = x.expired + e.expired,
        reversed = x.reversed + e.reversed
    FROM (SELECT t.member_id, sum(t.amount)::bigint AS amount
          FROM unnest(p_members, p_amounts) AS t(member_id, amount)
          GROUP BY t.member_id) s
    CROSS JOIN LATERAL points.transfer_effect(p_from, p_to, s.amount) e
    WHERE x.tenant_id = p_tenant AND x.member_id = s.member_id;
END $$;

-- Lock members in member_id order, creating the missing ones first when p_create.
CREATE FUNCTION points.lock_members(p_tenant text, p_members text[], p_create boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_create THEN
        INSERT INTO points.members (tenant_id, member_id)
        SELECT DISTINCT p_tenant, x FROM unnest(p_members) AS x ORDER BY 2
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM points.members x
    WHERE x.tenant_id = p_tenant AND x.member_id = ANY (p_members)
    ORDER BY x.member_id FOR UPDATE;
END $$;

-- --- events ---------------------------------------------------------------------------------

-- The answer to an earning event, stored and replayed byte for byte: the same fields in the
-- same order as proto.points.EventResult (tests/points/test_contracts.py holds them together).
CREATE TYPE points.event_result AS (
    event_id      text,
    member_id     text,
    status        text,
    points        bigint,
    capped_points bigint,
    balance       bigint
);

DROP FUNCTION points.record_events(text, text[], bytea[], text[], text[], timestamptz[],
                                   bigint[], jsonb[], timestamptz);
DROP FUNCTION points.record_event(text, text, bytea, text, text, timestamptz, bigint, jsonb,
                                  timestamptz);

-- One earning event, idempotent by event id. Returns the stored body (`replayed` when it was
-- recorded before), or a refusal code with a NULL body: `idempotency_conflict` for an event id
-- used before with another request, `unknown_action` for an unknown or disabled action (nothing
-- is stored then).
CREATE FUNCTION points.record_event(
    p_tenant text, p_event_id text, p_fingerprint bytea, p_member text, p_action text,
    p_occurred_at timestamptz, p_amount_cents bigint, p_attributes jsonb, p_now timestamptz)
RETURNS TABLE (refused text, body bytea, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_rule record;
    v_stored record;
    v_tz text;
    m points.members;
    v_local timestamp;
    v_limit jsonb;
    v_start date;
    v_periods text[] := '{}';
    v_starts date[] := '{}';
    v_used record;
    v_points bigint;
    v_award bigint;
    v_expires timestamptz;
    v_body bytea;
BEGIN
    SELECT i.fingerprint, i.body INTO v_stored FROM fuli.idempotency i
    WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
    IF FOUND THEN
        IF v_stored.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 'idempotency_conflict', NULL::bytea, true;
        ELSE
            RETURN QUERY SELECT NULL::text, v_stored.body, true;
        END IF;
        RETURN;
    END IF;

    SELECT * INTO v_rule FROM points.rule_for(p_tenant, p_action);
    IF NOT FOUND OR NOT v_rule.enabled THEN
        RETURN QUERY SELECT 'unknown_action', NULL::bytea, false;
        RETURN;
    END IF;

    -- Claim the id; a concurrent request with the same id waits here for us to commit.
    INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)
    VALUES (p_tenant, 'points.events', p_event_id, p_fingerprint) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.fingerprint, i.body INTO v_stored FROM fuli.idempotency i
        WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
        IF v_stored.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 'idempotency_conflict', NULL::bytea, true;
        ELSE
            RETURN QUERY SELECT NULL::text, v_stored.body, true;
        END IF;
        RETURN;
    END IF;

    m := points.lock_member(p_tenant, p_member, true);

    -- Computed in numeric and bounded, so no rule, amount and multiplier can overflow.
    v_points := least(floor(
        (v_rule.points + CASE WHEN v_rule.unit_cents IS NOT NULL AND p_amount_cents IS NOT NULL
                              THEN (p_amount_cents / v_rule.unit_cents)::numeric * v_rule.points_per_unit
                              ELSE 0 END)
        * m.earn_multiplier), 1000000000)::bigint;
    v_award := v_points;

    -- Caps: the member row is locked, so the usage read here is exact. Periods are the tenant's
    -- local days, weeks and months; its zone is read only for a rule with limits.
    IF jsonb_array_length(v_rule.limits) > 0 THEN
        SELECT t.time_zone INTO v_tz FROM fuli.tenants t WHERE t.tenant_id = p_tenant;
        v_local := p_occurred_at AT TIME ZONE coalesce(v_tz, 'Asia/Shanghai');
    END IF;
    FOR v_limit IN SELECT value FROM jsonb_array_elements(v_rule.limits) LOOP
        v_start := points.period_start(v_limit->>'period', v_local);
        v_periods := v_periods || (v_limit->>'period');
        v_starts := v_starts || v_start;
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
        FOR i IN 1 .. cardinality(v_periods) LOOP
            INSERT INTO points.cap_usage AS u (tenant_id, member_id, action, period, period_start,
                                               events, points)
            VALUES (p_tenant, p_member, p_action, v_periods[i], v_starts[i], 1, v_award)
            ON CONFLICT (tenant_id, member_id, action, period, period_start)
            DO UPDATE SET events = u.events + 1, points = u.points + EXCLUDED.points;
        END LOOP;
        v_expires := p_occurred_at + make_interval(days => v_rule.expires_after_days);
        INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
        VALUES (p_tenant, p_member, v_award, v_award, v_expires, 'event', p_event_id);
        m := points.post_transfer(p_tenant, p_member, 'earn', 'issuance', 'available', v_award,
                                  p_event_id, p_now, coalesce(p_amount_cents, 0));
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

    v_body := convert_to(row_to_json(ROW(
        p_event_id, p_member, CASE WHEN v_award < v_points THEN 'capped' ELSE 'awarded' END,
        v_award, v_points - v_award,
        m.available - points.expired_unswept(p_tenant, p_member, p_now)
    )::points.event_result)::text, 'UTF8');
    UPDATE fuli.idempotency i SET status_code = 201, body = v_body
    WHERE i.tenant_id = p_tenant AND i.scope = 'points.events' AND i.key = p_event_id;
    RETURN QUERY SELECT NULL::text, v_body, false;
END $$;

-- Many events in one transaction (group commit), in member order so that concurrent batches
-- lock members in the same order. Results come back with each item's position.
CREATE FUNCTION points.record_events(
    p_tenant text, p_event_ids text[], p_fingerprints bytea[], p_members text[],
    p_actions text[], p_occurred_at timestamptz[], p_amounts bigint[], p_attributes jsonb[],
    p_now timestamptz)
RETURNS TABLE (ord int, refused text, body bytea, replayed boolean)
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
        RETURN QUERY SELECT item.ord, r.refused, r.body, r.replayed;
    END LOOP;
END $$;

-- Refund of an event: claw back its points (pro rata for a partial refund of a purchase) from
-- what the member has available, reporting the shortfall, and reduce the member's spend.
CREATE OR REPLACE FUNCTION points.reverse_event(p_tenant text, p_reversal_id text,
                                                p_event_id text, p_amount_cents bigint,
                                                p_now timestamptz)
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
        m := points.post_transfer(p_tenant, v_member, 'reversal', 'available', 'issuance',
                                  v_taken, p_reversal_id, p_now, -v_refund);
    ELSIF v_refund > 0 THEN
        UPDATE points.members x SET spend_cents = x.spend_cents - v_refund
        WHERE x.tenant_id = p_tenant AND x.member_id = v_member RETURNING * INTO m;
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

-- --- holds, debits, refunds -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION points.place_hold(p_tenant text, p_hold_id text, p_member text,
                                             p_points bigint, p_reason text,
                                             p_expires_in_s int, p_now timestamptz)
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
    INSERT INTO points.holds (tenant_id, hold_id, member_id, points, reason, allocations,
                              expires_at, created_at)
    VALUES (p_tenant, p_hold_id, p_member, p_points, p_reason, v_alloc, v_expires, p_now);
    m := points.post_transfer(p_tenant, p_member, 'hold', 'available', 'held', p_points,
                              p_hold_id, p_now);
    RETURN QUERY SELECT v_live - p_points, m.held, v_expires;
END $$;

-- The hold, read again once its member is locked (so its status cannot change under us);
-- refuses an unknown hold.
CREATE FUNCTION points.lock_hold(p_tenant text, p_hold_id text)
RETURNS points.holds LANGUAGE plpgsql AS $$
DECLARE
    v_member text;
    h points.holds;
BEGIN
    SELECT x.member_id INTO v_member FROM points.holds x
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM points.refuse('unknown_hold', 'no such hold', jsonb_build_object('hold_id', p_hold_id));
    END IF;
    PERFORM points.lock_member(p_tenant, v_member, false);
    SELECT * INTO h FROM points.holds x WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    RETURN h;
END $$;

-- Capture, void or expire a pending hold. p_action: 'capture', 'void' or 'expire' (the worker).
CREATE OR REPLACE FUNCTION points.settle_hold(p_tenant text, p_hold_id text, p_action text,
                                              p_now timestamptz)
RETURNS TABLE (member_id text, points bigint, status text, available bigint, held bigint)
LANGUAGE plpgsql AS $$
DECLARE
    h points.holds;
    m points.members;
BEGIN
    h := points.lock_hold(p_tenant, p_hold_id);
    IF h.status <> 'pending' THEN
        PERFORM points.refuse('hold_not_pending', 'the hold was already ' || h.status,
                              jsonb_build_object('status', h.status));
    END IF;
    IF p_action = 'capture' AND h.expires_at <= p_now THEN
        PERFORM points.refuse('hold_expired', 'the hold expired and can no longer be captured',
                              jsonb_build_object('expired_at', h.expires_at));
    END IF;
    -- The held points leave the lots they were held in; captured, they are spent from them.
    UPDATE points.lots l
    SET held = l.held - a.points,
        remaining = l.remaining - CASE WHEN p_action = 'capture' THEN a.points ELSE 0 END
    FROM jsonb_to_recordset(h.allocations) AS a(lot_id bigint, points bigint)
    WHERE l.tenant_id = p_tenant AND l.member_id = h.member_id AND l.lot_id = a.lot_id;
    IF p_action = 'capture' THEN
        m := points.post_transfer(p_tenant, h.member_id, 'capture', 'held', 'redemption',
                                  h.points, p_hold_id, p_now);
        PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
            'member_id', h.member_id, 'points', h.points, 'kind', 'capture', 'ref', p_hold_id,
            'reason', h.reason, 'spent_at', p_now));
    ELSE
        m := points.post_transfer(p_tenant, h.member_id, 'void', 'held', 'available',
                                  h.points, p_hold_id, p_now);
    END IF;
    UPDATE points.holds x
    SET status = CASE p_action WHEN 'capture' THEN 'captured' WHEN 'void' THEN 'voided'
                               ELSE 'expired' END,
        resolved_at = p_now
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id
    RETURNING x.status INTO h.status;
    RETURN QUERY SELECT h.member_id, h.points, h.status,
                        m.available - points.expired_unswept(p_tenant, h.member_id, p_now), m.held;
END $$;

CREATE OR REPLACE FUNCTION points.refund_hold(p_tenant text, p_hold_id text, p_now timestamptz)
RETURNS TABLE (member_id text, points bigint, available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    h points.holds;
    m points.members;
BEGIN
    h := points.lock_hold(p_tenant, p_hold_id);
    IF h.status <> 'captured' THEN
        PERFORM points.refuse('hold_not_captured', 'only a captured hold can be refunded',
                              jsonb_build_object('status', h.status));
    END IF;
    IF h.refunded_at IS NOT NULL THEN
        PERFORM points.refuse('already_refunded', 'the hold was already refunded',
                              jsonb_build_object('refunded_at', h.refunded_at));
    END IF;
    UPDATE points.lots l SET remaining = l.remaining + a.points
    FROM jsonb_to_recordset(h.allocations) AS a(lot_id bigint, points bigint)
    WHERE l.tenant_id = p_tenant AND l.member_id = h.member_id AND l.lot_id = a.lot_id;
    UPDATE points.holds x SET refunded_at = p_now
    WHERE x.tenant_id = p_tenant AND x.hold_id = p_hold_id;
    m := points.post_transfer(p_tenant, h.member_id, 'refund', 'redemption', 'available',
                              h.points, p_hold_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsRefunded', jsonb_build_object(
        'member_id', h.member_id, 'points', h.points, 'ref', p_hold_id, 'refunded_at', p_now));
    RETURN QUERY SELECT h.member_id, h.points,
                        m.available - points.expired_unswept(p_tenant, h.member_id, p_now);
END $$;

CREATE OR REPLACE FUNCTION points.debit(p_tenant text, p_debit_id text, p_member text,
                                        p_points bigint, p_reason text, p_now timestamptz)
RETURNS TABLE (available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_live bigint;
BEGIN
    v_live := points.lock_spender(p_tenant, p_member, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_member, p_points, p_now, 'spend');
    INSERT INTO points.debits (tenant_id, debit_id, member_id, points, reason, at)
    VALUES (p_tenant, p_debit_id, p_member, p_points, p_reason, p_now);
    PERFORM points.post_transfer(p_tenant, p_member, 'debit', 'available', 'redemption',
                                 p_points, p_debit_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
        'member_id', p_member, 'points', p_points, 'kind', 'debit', 'ref', p_debit_id,
        'reason', p_reason, 'spent_at', p_now));
    RETURN QUERY SELECT v_live - p_points;
END $$;

-- --- several members: moves and grants -----------------------------------------------------

-- A move is two transfers with the same ref: the sender's points go to the redemption account
-- (spent, first-expiring lots first) and the receiver gets a new lot from the issuance account.
CREATE OR REPLACE FUNCTION points.move_points(p_tenant text, p_move_id text, p_from text,
                                              p_to text, p_points bigint, p_reason text,
                                              p_expires_days int, p_now timestamptz)
RETURNS TABLE (from_available bigint, to_available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r points.members;
    v_live bigint;
    v_expires timestamptz := p_now + make_interval(days => p_expires_days);
BEGIN
    IF p_from = p_to THEN
        PERFORM points.refuse('same_member', 'points cannot move to the same member',
                              jsonb_build_object('field', 'to_member_id'));
    END IF;
    -- Only the receiver is created: an unknown sender is refused by lock_spender.
    INSERT INTO points.members (tenant_id, member_id) VALUES (p_tenant, p_to) ON CONFLICT DO NOTHING;
    PERFORM points.lock_members(p_tenant, ARRAY[p_from, p_to], false);
    v_live := points.lock_spender(p_tenant, p_from, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_from, p_points, p_now, 'spend');
    PERFORM points.post_transfer(p_tenant, p_from, 'debit', 'available', 'redemption', p_points,
                                 p_move_id, p_now);
    INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
    VALUES (p_tenant, p_to, p_points, p_points, v_expires, 'grant', p_move_id);
    r := points.post_transfer(p_tenant, p_to, 'grant', 'issuance', 'available', p_points,
                              p_move_id, p_now);
    PERFORM points.emit(p_tenant, 'PointsSpent', jsonb_build_object(
        'member_id', p_from, 'points', p_points, 'kind', 'debit', 'ref', p_move_id,
        'reason', p_reason, 'spent_at', p_now));
    PERFORM points.emit(p_tenant, 'PointsAwarded', jsonb_build_object(
        'member_id', p_to, 'points', p_points, 'source', 'grant', 'ref', p_move_id,
        'occurred_at', p_now, 'expires_at', v_expires));
    RETURN QUERY SELECT v_live - p_points,
                        r.available - points.expired_unswept(p_tenant, p_to, p_now);
END $$;

-- Bulk issuance, all or nothing. Every member is locked, in member_id order, before anything is
-- posted; the items are posted in the order given, so each member's transfers follow it.
CREATE OR REPLACE FUNCTION points.apply_grant(p_tenant text, p_grant_id text, p_key_id text,
                                              p_reason text, p_members text[],
                                              p_points bigint[], p_expires timestamptz[],
                                              p_default_days int, p_now timestamptz)
RETURNS TABLE (item_count int, total_points bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_default_expiry timestamptz := p_now + make_interval(days => p_default_days);
    v_total bigint := (SELECT sum(x) FROM unnest(p_points) AS x);
BEGIN
    PERFORM points.lock_members(p_tenant, p_members, true);

    INSERT INTO points.lots (tenant_id, member_id, points, remaining, expires_at, source, ref)
    SELECT p_tenant, t.member_id, t.points, t.points, coalesce(t.expires_at, v_default_expiry),
           'grant', p_grant_id
    FROM unnest(p_members, p_points, p_expires) WITH ORDINALITY AS t(member_id, points, expires_at, ord)
    ORDER BY t.ord;

    PERFORM points.post_transfers(p_tenant, p_members, p_points, 'grant', 'issuance',
                                  'available', p_grant_id, p_now);

    INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)
    SELECT 'points', p_tenant, 'PointsAwarded',
           convert_to(jsonb_build_object('type', 'PointsAwarded', 'member_id', t.member_id,
                                         'points', t.points, 'source', 'grant', 'ref', p_grant_id,
                                         'occurred_at', p_now,
                                         'expires_at', coalesce(t.expires_at, v_default_expiry))::text,
                      'UTF8')
    FROM unnest(p_members, p_points, p_expires) WITH ORDINALITY AS t(member_id, points, expires_at, ord)
    ORDER BY t.ord;

    INSERT INTO points.grant_audit (tenant_id, grant_id, key_id, reason, item_count, total_points, at)
    VALUES (p_tenant, p_grant_id, p_key_id, p_reason, cardinality(p_members), v_total, p_now);
    RETURN QUERY SELECT cardinality(p_members), v_total;
END $$;

-- Give a member's points back to the issuance account (e.g. an ended pool's escrow).
CREATE OR REPLACE FUNCTION points.retire_points(p_tenant text, p_retirement_id text,
                                                p_member text, p_points bigint,
                                                p_now timestamptz)
RETURNS TABLE (available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_live bigint;
BEGIN
    v_live := points.lock_spender(p_tenant, p_member, p_points, p_now);
    PERFORM points.take_from_lots(p_tenant, p_member, p_points, p_now, 'spend');
    PERFORM points.post_transfer(p_tenant, p_member, 'reversal', 'available', 'issuance',
                                 p_points, p_retirement_id, p_now);
    RETURN QUERY SELECT v_live - p_points;
END $$;

-- --- expiry ---------------------------------------------------------------------------------

-- Move what is left of expired lots to the expiry account, for up to p_limit members.
-- Returns how many members were swept.
CREATE OR REPLACE FUNCTION points.sweep_expired_lots(p_now timestamptz, p_limit int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v record;
    v_points bigint;
    v_count int := 0;
BEGIN
    FOR v IN
        SELECT DISTINCT l.tenant_id, l.member_id FROM points.lots l
        WHERE l.expires_at <= p_now AND l.remaining > l.held
        ORDER BY l.tenant_id, l.member_id LIMIT p_limit
    LOOP
        PERFORM points.lock_member(v.tenant_id, v.member_id, false);
        SELECT coalesce(sum(l.remaining - l.held), 0) INTO v_points FROM points.lots l
        WHERE l.tenant_id = v.tenant_id AND l.member_id = v.member_id
          AND l.expires_at <= p_now AND l.remaining > l.held;
        UPDATE points.lots l SET remaining = l.held
        WHERE l.tenant_id = v.tenant_id AND l.member_id = v.member_id
          AND l.expires_at <= p_now AND l.remaining > l.held;
        IF v_points > 0 THEN
            PERFORM points.post_transfer(
                v.tenant_id, v.member_id, 'expiry', 'available', 'expiry', v_points,
                'expiry:' || to_char(p_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                p_now);
            PERFORM points.emit(v.tenant_id, 'PointsExpired', jsonb_build_object(
                'member_id', v.member_id, 'points', v_points, 'expired_at', p_now));
        END IF;
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END $$;
