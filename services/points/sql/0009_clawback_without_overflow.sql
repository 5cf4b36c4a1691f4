-- A refund's clawback was computed as points x cents in bigint, which overflows for the largest
-- purchases (10^9 points x 10^11 cents): a 500. It is computed in numeric now, by one function
-- (services/points/rules.py clawback is the same rule), and reverse_event calls it.

-- The points a refund of p_refund cents claws back, after p_refunded cents were refunded before:
-- cumulative rounding down, so partial refunds that add up to the whole claw back every point.
CREATE FUNCTION points.clawback(p_points bigint, p_amount bigint, p_refunded bigint,
                                p_refund bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT (div(p_points::numeric * (p_refunded + p_refund), p_amount)
            - div(p_points::numeric * p_refunded, p_amount))::bigint;
$$;

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
        v_claw := points.clawback(e.points, e.amount_cents, e.refunded_cents, v_refund);
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
