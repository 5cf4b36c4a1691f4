-- A purchase without an amount earned 0 points and was recorded as if it had been valid. An
-- event whose rule pays per unit of amount (`points_per_unit`) now needs `amount_cents`: without
-- it the event is refused with `amount_required` before its id is claimed, so nothing is stored
-- and a corrected request with the same id is recorded. The rest of the function is that of
-- 0007_one_posting_function.sql.

-- One earning event, idempotent by event id. Returns the stored body (`replayed` when it was
-- recorded before), or a refusal code with a NULL body: `idempotency_conflict` for an event id
-- used before with another request, `unknown_action` for an unknown or disabled action,
-- `amount_required` for an event without `amount_cents` whose rule pays per unit of amount
-- (nothing is stored for either).
CREATE OR REPLACE FUNCTION points.record_event(
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
    IF v_rule.points_per_unit > 0 AND p_amount_cents IS NULL THEN
        RETURN QUERY SELECT 'amount_required', NULL::bytea, false;
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
